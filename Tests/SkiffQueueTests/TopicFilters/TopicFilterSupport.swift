import SkiffQueue

/// Parses JSON text written in a test; a typo in a test's JSON is a test bug, reported by the thrown error.
func json(_ text: String) throws -> JSONValue {
    try JSONValue(parsing: Array(text.utf8))
}

/// Compiles a policy written as JSON text.
func filter(_ text: String) throws -> TopicFilter {
    try TopicFilter(policy: json(text))
}

/// The error a policy is rejected with, or nil when it compiles.
func rejection(_ policy: JSONValue) -> TopicFilterError? {
    do {
        _ = try TopicFilter(policy: policy)
        return nil
    } catch {
        return error
    }
}
