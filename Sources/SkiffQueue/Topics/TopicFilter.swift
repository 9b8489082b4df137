/// A compiled topic-subscription filter policy, in Amazon SNS's syntax for message-body filtering.
///
/// A policy is a JSON object. Each key maps either to an array of conditions (a leaf: the key's value must match
/// at least one of them) or to a nested object (the same kind of policy, applied to the body's value at that key).
/// All keys at one level must match (AND). The key `$or`, at any level, maps to an array of at least two policy objects,
/// at least one of which must match, AND-ed with its siblings.
///
/// Conditions in a leaf array:
/// - a string, number, boolean or `null`: exact match. Strings compare byte by byte (UTF-8, no Unicode
///   normalisation), numbers numerically (`300` matches `300.0`); a string never matches a number or a boolean
///   (`"true"` is not `true`, `"300"` is not `300`).
/// - `{"prefix": "s"}`, `{"suffix": "s"}`: a string value starting or ending with the non-empty `s` (bytes).
/// - `{"equals-ignore-case": "s"}`: a string value equal to `s` after both are lowercased.
/// - `{"numeric": [op, n]}` with `op` one of `=`, `<`, `<=`, `>`, `>=`; or `{"numeric": [lo, a, hi, b]}` with `lo`
///   one of `>`, `>=`, `hi` one of `<`, `<=` and `a < b`. Matches numbers only, never strings.
/// - `{"anything-but": x}`, `x` a string, number or boolean, a non-empty array of strings or of numbers, or an object
///   `{"prefix": s}`, `{"suffix": s}` or `{"equals-ignore-case": s}`: matches a present leaf value that `x` does not
///   match (`x` an array: equals none of its elements). A value of another type than `x` (e.g. `null`, or a number
///   against strings) is "not x" and matches. Never matches an absent key.
/// - `{"exists": true}`: the key is present with a leaf value: anything but an object (`null` and arrays, even empty
///   ones, count as present). `{"exists": false}`: the opposite: the key is absent, or its value is an object (an object
///   is not a leaf).
///
/// Body values:
/// - When the body (or the value a nested policy looks into) is not an object, every key in it is absent.
/// - When the value at a leaf key is an array, a condition matches if any element matches (nested arrays are
///   flattened; objects in them are skipped), except `exists`, which sees the array as present. So
///   `{"anything-but": "a"}` matches `["a", "b"]` (through `"b"`) but not `["a"]` nor `[]`.
/// - When the value at a nested key is an array, the nested policy matches if it matches any element (all its keys
///   within that one element); an empty array, or a non-object element, counts as a value where every key is absent.
/// - Keys are taken literally: a `.` in a policy key does not reach into nested objects.
///
/// Matching takes time proportional to the policy's size times the body's size; no regular expressions are used.
/// ``TopicFilter/limits`` bounds policies.
public struct TopicFilter: Sendable, Equatable {
    /// The policy this filter was compiled from.
    public let policy: JSONValue
    /// SNS's combination count of the policy (see ``Limits/maxCombinations``).
    public let combinations: Int

    let root: Conjunction

    /// Compiles and validates a filter policy.
    ///
    /// - Throws: ``TopicFilterError`` naming the first offending place in the policy (keys are visited in sorted
    ///   order, so the same policy always gets the same error): a policy that is not an object, an empty object or
    ///   array, an unknown operator, an operand of the wrong type, a bad numeric range, an `$or` with fewer than two
    ///   branches, or a policy over one of ``TopicFilter/limits``.
    public init(policy: JSONValue) throws(TopicFilterError) {
        var compiler = PolicyCompiler(limits: Self.limits)
        let compiled = try compiler.compilePolicy(policy)
        self.policy = policy
        self.root = compiled.conjunction
        self.combinations = compiled.combinations
    }
}
