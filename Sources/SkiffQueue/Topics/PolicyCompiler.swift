/// Turns a policy (a ``JSONValue``) into a ``TopicFilter/Conjunction``, checking it against ``TopicFilter/Limits``.
struct PolicyCompiler {
    typealias Conjunction = TopicFilter.Conjunction
    typealias Condition = TopicFilter.Condition

    let limits: TopicFilter.Limits
    private var keyCount = 0

    init(limits: TopicFilter.Limits) {
        self.limits = limits
    }

    mutating func compilePolicy(_ policy: JSONValue) throws(TopicFilterError) -> (conjunction: Conjunction, combinations: Int) {
        guard case .object(let object) = policy else {
            throw TopicFilterError(.root, "a filter policy must be a JSON object, found \(Self.describe(policy))")
        }
        return try compileObject(object, at: .root, depth: 1)
    }

    // MARK: Objects

    private mutating func compileObject(
        _ object: [String: JSONValue], at path: PolicyPath, depth: Int
    ) throws(TopicFilterError) -> (conjunction: Conjunction, combinations: Int) {
        guard depth <= limits.maxDepth else {
            throw TopicFilterError(path, "the policy nests objects more than \(limits.maxDepth) levels deep")
        }
        guard !object.isEmpty else {
            throw TopicFilterError(path, "a policy object must have at least one key")
        }
        var conjunction = Conjunction(fields: [], orGroups: [])
        var combinations = 1
        for key in object.keys.sorted() {
            let keyPath = path.key(key)
            keyCount += 1
            guard keyCount <= limits.maxKeys else {
                throw TopicFilterError(keyPath, "the policy has more than \(limits.maxKeys) keys")
            }
            try checkLength(key, at: keyPath, what: "key")
            guard let value = object[key] else { continue }
            let count: Int
            if key == "$or" {
                let group = try compileOr(value, at: keyPath, depth: depth)
                conjunction.orGroups.append(group.branches)
                count = group.combinations
            } else {
                switch value {
                case .array(let conditions):
                    let leaf = try compileLeaf(conditions, at: keyPath)
                    conjunction.fields.append(TopicFilter.Field(key: key, content: .leaf(leaf)))
                    count = leaf.count
                case .object(let nested):
                    let compiled = try compileObject(nested, at: keyPath, depth: depth + 1)
                    conjunction.fields.append(TopicFilter.Field(key: key, content: .nested(compiled.conjunction)))
                    count = compiled.combinations
                default:
                    throw TopicFilterError(
                        keyPath, "expected an array of conditions or a nested object, found \(Self.describe(value))")
                }
            }
            combinations = saturatingMultiply(combinations, count)
        }
        guard combinations <= limits.maxCombinations else {
            throw TopicFilterError(
                path,
                "the policy has more than \(limits.maxCombinations) combinations of values (SNS's rule: the product "
                    + "of the number of conditions of AND-ed keys, summed over $or branches)")
        }
        return (conjunction, combinations)
    }

    private mutating func compileOr(
        _ value: JSONValue, at path: PolicyPath, depth: Int
    ) throws(TopicFilterError) -> (branches: [Conjunction], combinations: Int) {
        guard case .array(let branches) = value else {
            throw TopicFilterError(path, "$or must be an array of at least 2 policy objects, found \(Self.describe(value))")
        }
        guard branches.count >= 2 else {
            throw TopicFilterError(path, "$or must be an array of at least 2 policy objects, found \(branches.count)")
        }
        var compiled: [Conjunction] = []
        var combinations = 0
        for (index, branch) in branches.enumerated() {
            let branchPath = path.index(index)
            guard case .object(let object) = branch else {
                throw TopicFilterError(branchPath, "an $or branch must be a policy object, found \(Self.describe(branch))")
            }
            let result = try compileObject(object, at: branchPath, depth: depth + 1)
            compiled.append(result.conjunction)
            combinations = min(combinations + result.combinations, limits.maxCombinations + 1)
        }
        return (compiled, combinations)
    }

    // MARK: Conditions

    private func compileLeaf(_ conditions: [JSONValue], at path: PolicyPath) throws(TopicFilterError) -> [Condition] {
        guard !conditions.isEmpty else {
            throw TopicFilterError(path, "an array of conditions must not be empty")
        }
        guard conditions.count <= limits.maxConditionsPerKey else {
            throw TopicFilterError(path, "more than \(limits.maxConditionsPerKey) conditions for one key")
        }
        var compiled: [Condition] = []
        compiled.reserveCapacity(conditions.count)
        for (index, condition) in conditions.enumerated() {
            compiled.append(try compileCondition(condition, at: path.index(index)))
        }
        return compiled
    }

    private func compileCondition(_ condition: JSONValue, at path: PolicyPath) throws(TopicFilterError) -> Condition {
        switch condition {
        case .string(let string):
            try checkLength(string, at: path, what: "string")
            return .equals(condition)
        case .null, .bool, .number:
            return .equals(condition)
        case .array:
            throw TopicFilterError(path, "a condition must be a string, number, boolean, null or an operator object, found an array")
        case .object(let object):
            let (name, operand) = try singleOperator(object, at: path)
            let operandPath = path.key(name)
            switch name {
            case "prefix":
                return .prefix(try nonEmptyString(operand, at: operandPath, operator: name))
            case "suffix":
                return .suffix(try nonEmptyString(operand, at: operandPath, operator: name))
            case "equals-ignore-case":
                return .equalsIgnoringCase(try string(operand, at: operandPath, operator: name).lowercased())
            case "anything-but":
                return .anythingBut(try compileAnythingBut(operand, at: operandPath))
            case "numeric":
                return .numeric(try compileNumeric(operand, at: operandPath))
            case "exists":
                guard case .bool(let exists) = operand else {
                    throw TopicFilterError(operandPath, "exists takes true or false, found \(Self.describe(operand))")
                }
                return .exists(exists)
            default:
                throw TopicFilterError(
                    operandPath,
                    "unknown operator \(PolicyPath.quoted(name)) (known: prefix, suffix, equals-ignore-case, "
                        + "anything-but, numeric, exists)")
            }
        }
    }

    private func compileAnythingBut(_ operand: JSONValue, at path: PolicyPath) throws(TopicFilterError) -> [Condition] {
        switch operand {
        case .string(let string):
            try checkLength(string, at: path, what: "string")
            return [.equals(operand)]
        case .number, .bool:
            return [.equals(operand)]
        case .array(let values):
            guard !values.isEmpty else {
                throw TopicFilterError(path, "anything-but's array must not be empty")
            }
            guard values.count <= limits.maxConditionsPerKey else {
                throw TopicFilterError(path, "anything-but's array has more than \(limits.maxConditionsPerKey) values")
            }
            let wantsStrings = if case .string = values[0] { true } else { false }
            var compiled: [Condition] = []
            for (index, value) in values.enumerated() {
                switch value {
                case .string(let string) where wantsStrings:
                    try checkLength(string, at: path.index(index), what: "string")
                case .number where !wantsStrings:
                    break
                default:
                    throw TopicFilterError(
                        path.index(index),
                        "anything-but's array must hold only strings or only numbers, found \(Self.describe(value))")
                }
                compiled.append(.equals(value))
            }
            return compiled
        case .object(let object):
            let (name, inner) = try singleOperator(object, at: path)
            let innerPath = path.key(name)
            switch name {
            case "prefix":
                return [.prefix(try nonEmptyString(inner, at: innerPath, operator: name))]
            case "suffix":
                return [.suffix(try nonEmptyString(inner, at: innerPath, operator: name))]
            case "equals-ignore-case":
                return [.equalsIgnoringCase(try string(inner, at: innerPath, operator: name).lowercased())]
            default:
                throw TopicFilterError(
                    innerPath,
                    "anything-but takes only prefix, suffix or equals-ignore-case, found \(PolicyPath.quoted(name))")
            }
        case .null:
            throw TopicFilterError(
                path, "anything-but takes a string, number, boolean, array of strings or numbers, or prefix/suffix object; found null")
        }
    }

    private func compileNumeric(_ operand: JSONValue, at path: PolicyPath) throws(TopicFilterError) -> TopicFilter.NumericRange {
        let shape = "numeric takes [operator, number] or [\">\" or \">=\", number, \"<\" or \"<=\", number]"
        guard case .array(let items) = operand, items.count == 2 || items.count == 4 else {
            throw TopicFilterError(path, shape)
        }
        let first = try numericOperator(items[0], at: path.index(0), allowed: ["=", "<", "<=", ">", ">="])
        let firstValue = try number(items[1], at: path.index(1))
        let bound = TopicFilter.NumericRange.Bound(value: firstValue, inclusive: first.contains("="))
        if items.count == 2 {
            switch first {
            case "=": return .init(lower: bound, upper: bound)
            case "<", "<=": return .init(lower: nil, upper: bound)
            default: return .init(lower: bound, upper: nil)
            }
        }
        guard first == ">" || first == ">=" else {
            throw TopicFilterError(path.index(0), "a numeric range must start with a lower bound, \">\" or \">=\"")
        }
        let second = try numericOperator(items[2], at: path.index(2), allowed: ["<", "<="])
        let secondValue = try number(items[3], at: path.index(3))
        guard firstValue < secondValue else {
            throw TopicFilterError(path, "a numeric range's lower bound must be less than its upper bound")
        }
        return .init(lower: bound, upper: .init(value: secondValue, inclusive: second == "<="))
    }

    // MARK: Helpers

    private func singleOperator(
        _ object: [String: JSONValue], at path: PolicyPath
    ) throws(TopicFilterError) -> (name: String, operand: JSONValue) {
        guard object.count == 1, let (name, operand) = object.first else {
            throw TopicFilterError(path, "an operator object must have exactly one key, found \(object.count)")
        }
        return (name, operand)
    }

    private func numericOperator(
        _ value: JSONValue, at path: PolicyPath, allowed: [String]
    ) throws(TopicFilterError) -> String {
        guard case .string(let op) = value, allowed.contains(op) else {
            let list = allowed.map { "\"\($0)\"" }.joined(separator: ", ")
            throw TopicFilterError(path, "expected one of \(list), found \(Self.describe(value))")
        }
        return op
    }

    private func number(_ value: JSONValue, at path: PolicyPath) throws(TopicFilterError) -> Double {
        guard case .number(let number) = value, number.isFinite else {
            throw TopicFilterError(path, "expected a number, found \(Self.describe(value))")
        }
        return number
    }

    private func string(_ value: JSONValue, at path: PolicyPath, operator name: String) throws(TopicFilterError) -> String {
        guard case .string(let string) = value else {
            throw TopicFilterError(path, "\(name) takes a string, found \(Self.describe(value))")
        }
        try checkLength(string, at: path, what: "string")
        return string
    }

    private func nonEmptyString(_ value: JSONValue, at path: PolicyPath, operator name: String) throws(TopicFilterError) -> String {
        let string = try string(value, at: path, operator: name)
        guard !string.isEmpty else {
            throw TopicFilterError(path, "\(name) takes a non-empty string")
        }
        return string
    }

    private func checkLength(_ string: String, at path: PolicyPath, what: String) throws(TopicFilterError) {
        guard string.utf8.count <= limits.maxStringBytes else {
            throw TopicFilterError(path, "a \(what) longer than \(limits.maxStringBytes) bytes")
        }
    }

    private func saturatingMultiply(_ lhs: Int, _ rhs: Int) -> Int {
        let (product, overflow) = lhs.multipliedReportingOverflow(by: rhs)
        return overflow ? limits.maxCombinations + 1 : min(product, limits.maxCombinations + 1)
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
