extension TopicFilter {
    /// One compiled policy object: every field must match, and every `$or` group must have a matching branch.
    struct Conjunction: Sendable, Equatable {
        var fields: [Field]
        var orGroups: [[Conjunction]]
    }

    /// One key of a policy object.
    struct Field: Sendable, Equatable {
        enum Content: Sendable, Equatable {
            /// An array of conditions, OR-ed.
            case leaf([Condition])
            /// A nested policy object, applied to the body's value at the key.
            case nested(Conjunction)
        }

        var key: String
        var content: Content
    }

    /// One compiled condition of a leaf array.
    indirect enum Condition: Sendable, Equatable {
        /// Exact match with a scalar (`null`, a boolean, a number or a string).
        case equals(JSONValue)
        case prefix(String)
        case suffix(String)
        /// Held lowercased.
        case equalsIgnoringCase(String)
        /// Matches a leaf value that none of these (`equals`, `prefix`, `suffix`, `equalsIgnoringCase`) match.
        case anythingBut([Condition])
        case numeric(NumericRange)
        case exists(Bool)
    }

    /// A numeric interval; `nil` bounds are open-ended. `=` is a closed interval of one point.
    struct NumericRange: Sendable, Equatable {
        struct Bound: Sendable, Equatable {
            var value: Double
            var inclusive: Bool
        }

        var lower: Bound?
        var upper: Bound?

        func contains(_ number: Double) -> Bool {
            if let lower {
                guard lower.inclusive ? number >= lower.value : number > lower.value else { return false }
            }
            if let upper {
                guard upper.inclusive ? number <= upper.value : number < upper.value else { return false }
            }
            return true
        }
    }
}
