import NIOCore
import PropertyBased
import SkiffQueue
import Testing

@testable import SkiffAPI

@Suite("Stream protocol")
struct StreamProtocolTests {
    @Test func objectMembersKeepEachValueAsSent() throws {
        let frame = ByteBuffer(string: #" { "op" : "publish", "body": {"a":[1,{"b":null}]} ,"n":-1.5e3,"s":"x\"y", "e":{}, "z":[] } "#)
        let members = try #require(try JSONValidator.objectMembers(frame))
        let text = { (range: Range<Int>) in String(decoding: frame.readableBytesView[range], as: UTF8.self) }
        #expect(members.map { text($0.key) } == ["op", "body", "n", "s", "e", "z"])
        #expect(members.map { text($0.value) } == [#""publish""#, #"{"a":[1,{"b":null}]}"#, "-1.5e3", #""x\"y""#, "{}", "[]"])
        #expect(try JSONValidator.objectMembers(ByteBuffer(string: "[1]")) == nil)
        #expect(try JSONValidator.objectMembers(ByteBuffer(string: "{}")) == [])
        #expect(throws: JSONValidationError.self) { try JSONValidator.objectMembers(ByteBuffer(string: #"{"a":}"#)) }
    }

    @Test func aPublishKeepsItsBodyBytesAndOptions() throws {
        let body = #"{"x": [1, 2.50, "é"]}"#
        let command = try StreamCommand.parse(
            ByteBuffer(string: #"{"ref":"r1","op":"publish","key":"k\u0031","delay":250,"priority":9,"body":\#(body),"future":true}"#),
            maximumBodyBytes: 100
        )
        guard case .publish(let stored, let options) = command.operation else {
            Issue.record("not a publish")
            return
        }
        #expect(String(buffer: stored) == body)
        #expect(options == SendOptions(delay: .milliseconds(250), priority: 9, idempotencyKey: "k1"))
        #expect(command.ref.map { String(buffer: $0) } == #""r1""#)
    }

    @Test func aRefusalCarriesTheFramesRef() {
        let cases: [(String, Int, String?)] = [
            (#"{"op":"publish","ref":5,"body":"0123456789"}"#, 413, "5"),
            (#"{"op":"ack","ref":"a","receipt":"no"}"#, 404, #""a""#),
            (#"{"op":"extend","ref":"b","receipt":"abc.1","ms":-1}"#, 400, #""b""#),
            (#"{"op":"nack","receipt":"abc.1","delay":1.5}"#, 400, nil),
            (#"{"op":"credit","n":"3"}"#, 400, nil),
        ]
        for (frame, status, ref) in cases {
            let error = #expect(throws: StreamCommand.Refusal.self) { try StreamCommand.parse(ByteBuffer(string: frame), maximumBodyBytes: 5) }
            #expect(error?.status == status, "\(frame)")
            #expect(error?.ref.map { String(buffer: $0) } == ref, "\(frame)")
        }
    }

    /// Whatever the sequence of grants, claims, holds and settlements, the window never lets
    /// more messages be claimed or held than the credit allows.
    @Test func theWindowNeverHoldsMoreThanItsCredit() async {
        await propertyCheck(input: Gen.int(in: 0...9).array(of: 1...200)) { steps in
            var window = StreamWindow(credit: 2)
            var pending = 0
            var token = 0
            let start = ContinuousClock.now
            for (index, step) in steps.enumerated() {
                switch step {
                case 0, 1: _ = window.grant(step + 1)
                case 2, 3, 4:
                    let taken = window.reserve(upTo: step)
                    pending += taken
                case 5, 6:
                    guard pending > 0 else { continue }
                    pending -= 1
                    token += 1
                    window.hold(Receipt(messageID: "m", claimToken: token), until: start + .seconds(index % 7))
                case 7:
                    if let receipt = window.held.keys.first {
                        let settled = window.settle(receipt)
                        #expect(settled)
                    }
                case 8:
                    _ = window.expire(at: start + .seconds(index % 7))
                default:
                    let unused = Swift.min(pending, 1)
                    pending -= unused
                    window.unreserve(unused)
                }
                #expect(window.claiming + window.held.count <= window.credit)
                #expect(window.available == window.credit - window.claiming - window.held.count)
            }
        }
    }

    @Test func aCloseReasonNeverCutsACharacterInTwo() {
        let reason = String(repeating: "é", count: 100)
        let data = WebSocketStreamOutput.closeData(.policyViolation, reason: reason)
        #expect(data.readableBytes <= 125)
        let text = data.getString(at: data.readerIndex + 2, length: data.readableBytes - 2)
        #expect(text == String(repeating: "é", count: 61))
    }
}
