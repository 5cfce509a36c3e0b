import Testing
@testable import QMP

/// The protocol as QEMU 7.2 speaks it, message for message.
@Suite struct QMPSessionTests {
    func session() -> QMPSession {
        QMPSession(commands: [
            QMPCommand("query-status") { _ in .object([("running", true), ("singlestep", false), ("status", "running")]) },
            QMPCommand("echo", arguments: [QMPArgument("text", .string, required: true), QMPArgument("n", .int)]) { args in
                args["text"]!
            },
            QMPCommand("x-oob-test", allowOOB: true) { _ in .object([]) },
        ], maxMessageBytes: 256)
    }

    func send(_ s: inout QMPSession, _ text: String) -> [String] { s.receive(Array(text.utf8)).map(\.serialized) }

    @Test func greetingAndNegotiation() {
        var s = session()
        #expect(s.greetingMessage.serialized ==
            #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "swift-vmm"}, "capabilities": ["oob"]}}"#)
        #expect(send(&s, #"{"execute": "query-status", "id": 1}"#) ==
            [#"{"id": 1, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#])
        #expect(send(&s, #"{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}"#) == [#"{"return": {}}"#])
        #expect(send(&s, #"{"execute": "qmp_capabilities"}"#) ==
            [#"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#])
        #expect(send(&s, #"{"execute": "query-status", "id": "a"}"#) ==
            [#"{"return": {"status": "running", "singlestep": false, "running": true}, "id": "a"}"#])
    }

    @Test func malformedRequestsGetQEMUsErrors() {
        var s = session()
        _ = send(&s, #"{"execute": "qmp_capabilities"}"#)
        let cases: [(String, String)] = [
            (#"[1, 2]"#, "QMP input must be a JSON object"),
            (#"{"execute": 1}"#, "QMP input member 'execute' must be a string"),
            (#"{"execute": "echo", "arguments": []}"#, "QMP input member 'arguments' must be an object"),
            (#"{"execute": "echo", "bogus": 1}"#, "QMP input member 'bogus' is unexpected"),
            (#"{"exec-oob": "x-oob-test"}"#, "QMP input member 'exec-oob' is unexpected"),   // oob not enabled
            (#"{"id": 5}"#, "QMP input lacks member 'execute'"),
            (#"{"execute": "echo", "arguments": {"text": "a", "extra": 1}}"#, "Parameter 'extra' is unexpected"),
            (#"{"execute": "echo", "arguments": {}}"#, "Parameter 'text' is missing"),
            (#"{"execute": "echo", "arguments": {"text": 3}}"#, "Invalid parameter type for 'text', expected: string"),
        ]
        for (input, desc) in cases {
            let reply = s.receive(Array(input.utf8))
            #expect(reply.count == 1 && reply[0]["error"]?["class"] == "GenericError" && reply[0]["error"]?["desc"] == .string(desc), "\(input)")
        }
        #expect(send(&s, #"{"execute": "nope"}"#) == [#"{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#])
        // Broken JSON and oversized messages get an error each and the stream carries on.
        let replies = s.receive(Array(("{\"execute\": tru}" + "{\"x\": \"" + String(repeating: "y", count: 300) + "\"}"
                                       + #"{"execute": "echo", "arguments": {"text": "ok"}}"#).utf8))
        #expect(replies.count == 3)
        #expect(replies[0]["error"]?["desc"] == "JSON parse error, invalid keyword 'tru'")
        #expect(replies[0]["error"]?["class"] == "GenericError" && replies[1]["error"]?["class"] == "GenericError")
        #expect(replies[2] == ["return": "ok"])
    }

    @Test func outOfBandOnlyForCommandsThatAllowIt() {
        var s = session()
        _ = send(&s, #"{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}"#)
        #expect(send(&s, #"{"exec-oob": "x-oob-test", "id": 1}"#) == [#"{"return": {}, "id": 1}"#])
        #expect(send(&s, #"{"exec-oob": "query-status", "id": 2}"#) ==
            [#"{"id": 2, "error": {"class": "GenericError", "desc": "The command query-status does not support OOB"}}"#])
        #expect(send(&s, #"{"exec-oob": "x-oob-test", "execute": "echo"}"#).first?.contains("clashes") == true)
    }
}
