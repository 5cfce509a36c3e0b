import Testing
@testable import QMP

@Suite struct JSONTests {
    @Test func roundTripsQMPShapes() throws {
        let text = #"{"execute": "query-status", "arguments": {"a": [1, -2, 18446744073709551615, 1.5, true, null, "x\"y\n\u00e9"]}, "id": "c1"}"#
        let v = try JSONParser.parse(text)
        #expect(v["execute"] == "query-status")
        #expect(v["id"] == "c1")
        #expect(v["arguments"]?["a"] == [1, -2, .uint(UInt64.max), .double(1.5), true, nil, "x\"y\né"])
        #expect(try JSONParser.parse(v.serialized) == v)
        #expect(JSONValue.object([("return", [:])]).serialized == #"{"return": {}}"#)
    }

    @Test(arguments: ["", "{", "{\"a\" 1}", "[1,]", "tru", "\"\\x\"", "{\"a\":1}}", "01x", "\"\u{01}\"", "-", "\"\\ud800\""])
    func refusesMalformedInput(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    /// A character outside the BMP written as an escaped surrogate pair, as JSON encoders
    /// write it (found by the `qmp` fuzz target: Fuzz/regressions/qmp/json-surrogate-pair).
    /// QEMU: parse_string() joins the pair.
    @Test func joinsEscapedSurrogatePairs() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == "\u{1F600}")
        #expect(try JSONParser.parse(#"["a\uD834\uDD1Eb", 1]"#) == ["a\u{1D11E}b", 1])
        #expect(try JSONParser.parse(#"{"execute": "x", "id": "\udbff\udfff"}"#)["id"] == "\u{10FFFF}")
        for lone in [#""\ud83d""#, #""\ud83dx""#, #""\ud83d\u0041""#, #""\ud83d\""#, #""\ude00""#, #""\ud83d\ud83d""#] {
            #expect(throws: JSONParseError.self, "\(lone)") { try JSONParser.parse(lone) }
        }
    }

    @Test func boundsNesting() {
        let deep = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSONParser.parse(ok)) != nil)
    }

    @Test func streamsConcatenatedValuesAndDropsOversizedOnes() {
        var s = JSONStreamer(maxValueBytes: 64)
        var items = s.feed(Array(#"{"execute": "a"}{"execute":"#.utf8))
        #expect(items == [.value(Array(#"{"execute": "a"}"#.utf8))])
        items = s.feed(Array(#" "b", "x": "}{"}  1 {"execute": "c"}"#.utf8))
        #expect(items == [.value(Array(#"{"execute": "b", "x": "}{"}"#.utf8)), .value(Array("1".utf8)),
                          .value(Array(#"{"execute": "c"}"#.utf8))])
        items = s.feed(Array(("{\"x\": \"" + String(repeating: "y", count: 100) + "\"}{\"execute\": \"d\"}").utf8))
        #expect(items == [.tooLarge, .value(Array(#"{"execute": "d"}"#.utf8))])
    }
}
