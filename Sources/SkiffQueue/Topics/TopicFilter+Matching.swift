extension TopicFilter {
    /// Whether a message body passes this filter (see ``TopicFilter`` for the rules).
    ///
    /// Takes time proportional to the policy's size times the body's size; recursion is bounded by the policy's depth.
    public func matches(_ body: JSONValue) -> Bool {
        root.matches(in: body)
    }
}

extension TopicFilter.Conjunction {
    /// Matches against `value`, which is an object, or anything else (then every key is absent); arrays are not
    /// looked into here (see `matchesAnyElement`).
    func matches(in value: JSONValue?) -> Bool {
        let object: [String: JSONValue]? = if case .object(let object) = value { object } else { nil }
        for field in fields where !field.matches(object?[field.key]) {
            return false
        }
        for group in orGroups where !group.contains(where: { $0.matches(in: value) }) {
            return false
        }
        return true
    }

    /// Matches against the value at a nested key: an object, or any element of an array (nested arrays flattened);
    /// an empty array, a scalar or an absent value is a value where every key is absent.
    func matchesAnyElement(of value: JSONValue?) -> Bool {
        guard case .array(let elements) = value else { return matches(in: value) }
        var pending: [ArraySlice<JSONValue>] = [elements[...]]
        var sawElement = false
        var checkedAbsent = false
        while var slice = pending.popLast() {
            guard let element = slice.popFirst() else { continue }
            pending.append(slice)
            switch element {
            case .array(let inner):
                pending.append(inner[...])
            case .object:
                sawElement = true
                if matches(in: element) { return true }
            default:
                sawElement = true
                if !checkedAbsent {
                    checkedAbsent = true
                    if matches(in: nil) { return true }
                }
            }
        }
        return !sawElement && matches(in: nil)
    }
}

extension TopicFilter.Field {
    func matches(_ value: JSONValue?) -> Bool {
        switch content {
        case .nested(let conjunction):
            return conjunction.matchesAnyElement(of: value)
        case .leaf(let conditions):
            // Absent, or an object (not a leaf): only `exists: false` can match.
            guard let value, !value.isObject else {
                return conditions.contains(.exists(false))
            }
            return conditions.contains { condition in
                switch condition {
                case .exists(let exists):
                    return exists
                case .anythingBut(let excluded):
                    return Self.anyLeaf(of: value) { leaf in !excluded.contains { $0.matchesLeaf(leaf) } }
                default:
                    return Self.anyLeaf(of: value) { leaf in condition.matchesLeaf(leaf) }
                }
            }
        }
    }

    /// Whether `predicate` holds for some scalar in `value`: `value` itself, or the elements of an array, nested
    /// arrays flattened and objects skipped. Iterative, so a deep body cannot exhaust the stack.
    static func anyLeaf(of value: JSONValue, where predicate: (JSONValue) -> Bool) -> Bool {
        guard case .array(let elements) = value else { return predicate(value) }
        var pending: [ArraySlice<JSONValue>] = [elements[...]]
        while var slice = pending.popLast() {
            guard let element = slice.popFirst() else { continue }
            pending.append(slice)
            switch element {
            case .array(let inner): pending.append(inner[...])
            case .object: continue
            default: if predicate(element) { return true }
            }
        }
        return false
    }
}

extension TopicFilter.Condition {
    /// Whether this condition holds for one scalar value (never an array or object). `exists` and `anything-but`
    /// are handled by the field, which sees the whole value.
    func matchesLeaf(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.equals(.string(let expected)), .string(let actual)):
            return expected.utf8.elementsEqual(actual.utf8)
        case (.equals(.number(let expected)), .number(let actual)):
            return expected == actual
        case (.equals(.bool(let expected)), .bool(let actual)):
            return expected == actual
        case (.equals(.null), .null):
            return true
        case (.prefix(let prefix), .string(let actual)):
            return actual.utf8.starts(with: prefix.utf8)
        case (.suffix(let suffix), .string(let actual)):
            return actual.utf8.reversed().starts(with: suffix.utf8.reversed())
        case (.equalsIgnoringCase(let expected), .string(let actual)):
            return actual.lowercased().utf8.elementsEqual(expected.utf8)
        case (.numeric(let range), .number(let actual)):
            return range.contains(actual)
        default:
            return false
        }
    }
}

extension JSONValue {
    var isObject: Bool {
        if case .object = self { true } else { false }
    }
}
