import Foundation

extension APIKey {
    /// The shortest accepted secret: long enough that guessing is hopeless, short enough for a shell.
    public static let minimumSecretLength = 16
    static let maximumSecretLength = 512

    /// Parses a keys document: `[{"key": "...", "scopes": ["send", "receive", "admin"], "queuePrefix": "orders-", "name": "billing"}]`.
    ///
    /// `queuePrefix` and `name` are optional. Anything unexpected is an error rather than ignored,
    /// since a misspelt `queuePrefix` would otherwise silently widen a key. The error names the
    /// source, the entry index and the field, never a secret.
    ///
    /// - Parameter source: what to call the document in errors (`SKIFF_API_KEYS`, or the file variable and path).
    /// - Throws: ``ConfigurationError``.
    public static func parseDocument(_ text: String, source: String) throws -> [APIKey] {
        func fail(_ message: String) -> ConfigurationError { ConfigurationError("\(source): \(message)") }
        let document: Any
        do {
            document = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [])
        } catch {
            throw fail("not valid JSON; expected [{\"key\": \"...\", \"scopes\": [\"send\", \"receive\", \"admin\"], \"queuePrefix\": \"...\"}]")
        }
        guard let entries = document as? [Any] else { throw fail("must be a JSON array of key objects") }
        guard !entries.isEmpty else {
            throw fail("holds no keys; unset it to run without authentication (not recommended)")
        }
        var keys: [APIKey] = []
        var names: Set<String> = []
        for (index, entry) in entries.enumerated() {
            func fieldError(_ field: String, _ message: String) -> ConfigurationError { fail("[\(index)].\(field) \(message)") }
            guard let object = entry as? [String: Any] else { throw fail("[\(index)] must be an object") }
            let known: Set<String> = ["key", "scopes", "queuePrefix", "name"]
            if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
                throw fail("[\(index)] has an unknown field \"\(unknown)\" (known: key, scopes, queuePrefix, name)")
            }
            guard let secret = object["key"] as? String else { throw fieldError("key", "is missing or not a string") }
            guard (minimumSecretLength...maximumSecretLength).contains(secret.utf8.count) else {
                throw fieldError("key", "must be \(minimumSecretLength) to \(maximumSecretLength) characters long")
            }
            guard secret.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw fieldError("key", "must be printable ASCII without spaces")
            }
            if keys.contains(where: { AccessPolicy.constantTimeEquals($0.secret, Array(secret.utf8)) }) {
                throw fieldError("key", "repeats an earlier key")
            }
            guard let rawScopes = object["scopes"] as? [Any], !rawScopes.isEmpty else {
                throw fieldError("scopes", "must be a non-empty array of \"send\", \"receive\", \"admin\"")
            }
            var scopes: Set<Scope> = []
            for rawScope in rawScopes {
                guard let text = rawScope as? String, let scope = Scope(rawValue: text) else {
                    throw fieldError("scopes", "may hold only \"send\", \"receive\" and \"admin\", got \(rawScope)")
                }
                scopes.insert(scope)
            }
            var queuePrefix: String?
            if let rawPrefix = object["queuePrefix"], !(rawPrefix is NSNull) {
                guard let prefix = rawPrefix as? String, QueueNamePrefix.isValid(prefix) else {
                    throw fieldError("queuePrefix", "must be a string of at most 128 characters from A-Z, a-z, 0-9, '_' and '-'")
                }
                queuePrefix = prefix.isEmpty ? nil : prefix
            }
            var name = "#\(index)"
            if let rawName = object["name"] {
                guard let given = rawName as? String, (1...64).contains(given.utf8.count),
                    given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
                else {
                    throw fieldError("name", "must be 1 to 64 printable ASCII characters without spaces")
                }
                name = given
            }
            guard names.insert(name).inserted else { throw fieldError("name", "repeats an earlier name") }
            keys.append(APIKey(secret: secret, name: name, scopes: scopes, queuePrefix: queuePrefix))
        }
        return keys
    }
}

/// The character rule of a `queuePrefix`: that of queue names, and possibly empty.
enum QueueNamePrefix {
    static func isValid(_ prefix: String) -> Bool {
        prefix.utf8.count <= 128
            && prefix.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "_"), UInt8(ascii: "-"):
                    return true
                default:
                    return false
                }
            }
    }
}
