/// One page of a payload store's listing, in key order.
public struct PayloadPage: Hashable, Sendable {
    public let objects: [PayloadObject]
    /// Pass to the next ``PayloadStore/list(prefix:pageToken:pageSize:)`` call; nil on the last page.
    public let nextPageToken: String?

    public init(objects: [PayloadObject], nextPageToken: String?) {
        self.objects = objects
        self.nextPageToken = nextPageToken
    }
}
