"""Unit tests of p2plocal.py's MessagePack codec and beacon format, without a network.

    cd samples/python && python3 -m unittest test_p2plocal
"""

import datetime
import socket
import struct
import threading
import unittest

import p2plocal as p


class CodecTests(unittest.TestCase):
    def test_values_round_trip_in_every_width(self):
        values = [None, True, False, 0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
                  -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63,
                  0.5, -1e300, "", "a" * 31, "a" * 32, "é" * 200, "x" * 70000, b"", b"\x00" * 300,
                  [], list(range(16)), list(range(70000)), {}, {str(i): i for i in range(20)}, {"nested": [{"a": [1]}]}]
        for value in values:
            self.assertEqual(p.unpack(p.pack(value)), value, repr(value)[:60])

    def test_smallest_encodings_as_in_the_spec_example(self):
        self.assertEqual(p.pack([0, 1, "greet", {"name": "Ann"}]).hex(), "940001a5677265657481a46e616d65a3416e6e")
        self.assertEqual(p.pack(4194304).hex(), "ce00400000")

    def test_timestamps_in_all_three_forms(self):
        utc = datetime.timezone.utc
        for value in [datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc),              # 4 bytes
                      datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=utc),      # 8 bytes
                      datetime.datetime(1900, 1, 1, tzinfo=utc),                       # 12 bytes
                      datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc)]:
            self.assertEqual(p.unpack(p.pack(value)), value)
        # Nanoseconds below a microsecond are cut, as PROTOCOL.md says for Python.
        raw = struct.pack(">BBbIq", 0xC7, 12, -1, 123456789, 1700000000)
        self.assertEqual(p.unpack(raw).microsecond, 123456)

    def test_float32_reads_as_float(self):
        self.assertAlmostEqual(p.unpack(struct.pack(">Bf", 0xCA, 0.1)), 0.1, places=7)

    def test_malformed_input_is_refused_not_trusted(self):
        bad = [b"", b"\xc1", b"\xa5abc", b"\xdb\x7f\xff\xff\xff", b"\xdd\xff\xff\xff\xff\x01", b"\xdf\xff\xff\xff\xff",
               b"\x92\x01", b"\x82\xa1a\x01\xa1a\x02", b"\xd4\x05\x00", b"\x01\x02", b"\x91" * 100 + b"\xc0",
               b"\xd6\xff\x00", struct.pack(">BBbIq", 0xC7, 12, -1, 0, 253402300800)]
        for data in bad:
            with self.assertRaises(ValueError, msg=data[:16].hex()):
                p.unpack(data)

    def test_unsendable_values_are_refused(self):
        for value in [object(), 2**64, -2**63 - 1, {1, 2}]:
            with self.assertRaises((TypeError, OverflowError)):
                p.pack(value)


class BeaconTests(unittest.TestCase):
    def test_beacon_round_trip(self):
        data = p.format_beacon("itecnet", "bob", "127.0.0.1", 40123, "9f2c61d04ab34c1e", "alive", 3000, 1795000000000)
        self.assertEqual(data, b"itecnet|bob|127.0.0.1:40123|p2p1|9f2c61d04ab34c1e|alive|3000|1795000000000")
        beacon = p.parse_beacon(data + b"|future|fields")
        self.assertEqual((beacon["name"], beacon["port"], beacon["kind"], beacon["interval_ms"]),
                         ("bob", 40123, "alive", 3000))

    def test_legacy_and_ipv6_beacons(self):
        self.assertEqual(p.parse_beacon(b"itecnet|old|192.168.1.5:8000")["kind"], "legacy")
        self.assertEqual(p.parse_beacon(b"itecnet|v6|[::1]:8000|p2p1|i|hello|1000|0")["host"], "::1")

    def test_bad_beacons_are_dropped(self):
        for data in [b"itecnet|bob", b"|bob|127.0.0.1:1", b"itecnet||127.0.0.1:1", b"itecnet|bob|127.0.0.1:0",
                     b"itecnet|bob|host:1", b"itecnet|bob|127.0.0.1:1|p2p1|i|wave|1000|0",
                     b"itecnet|bob|127.0.0.1:1|p2p1|i|alive|0|0", b"itecnet|bob|127.0.0.1:1|p2p1||alive|1000|0",
                     b"itecnet|bob|127.0.0.1:1|p2p1|" + b"i" * 65 + b"|alive|1000|0", b"\xff|bob|127.0.0.1:1",
                     b"itecnet|bob|127.0.0.1:\xc2\xb2", b"x" * 1025]:
            self.assertIsNone(p.parse_beacon(data), data[:40])


class ConnectionTests(unittest.TestCase):
    """Against a fake server on loopback that says idleTimeoutMs 2000 in its hello."""

    def setUp(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        udp.close()
        self.node = p.Node("tester", discovery_port=port)
        self.peer = p.Peer("fake", "127.0.0.1", self.server.getsockname()[1], "fake-1", 3.0, 0, 0, False)

    def tearDown(self):
        self.node.close()
        self.server.close()

    def _serve(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._answer, args=(sock,), daemon=True).start()

    def _answer(self, sock):
        lock = threading.Lock()
        with sock:
            try:
                p._recv_frame(sock, 1 << 20)
                p._send_frame(sock, lock, [4, 1, "fake", "fake-1", 1 << 20, 2000], 1 << 20)
                while True:
                    request = p._recv_frame(sock, 1 << 20)
                    p._send_frame(sock, lock, [1, request[1], "ok", "an element to skip"], 1 << 20)
            except (OSError, ValueError):
                pass

    def test_calls_share_a_connection_until_it_idles_for_half_the_servers_timeout(self):
        first = self.node._connection_to(self.peer)
        self.assertEqual([first.call("f", {}).result(5) for _ in range(3)], ["ok"] * 3)
        self.assertIs(self.node._connection_to(self.peer), first)
        first._last_used -= 1.5  # as if idle for 1.5 s: past half of the server's 2 s
        second = self.node._connection_to(self.peer)
        self.assertIsNot(second, first)
        self.assertTrue(first.closed)
        self.assertEqual(second.call("f", {}).result(5), "ok")
        self.assertEqual(self.accepted, 2)

    def test_a_peer_that_answers_as_another_instance_is_refused(self):
        restarted = p.Peer("fake", self.peer.host, self.peer.port, "fake-0", 3.0, 0, 0, False)
        with self.assertRaises(p.PeerConnectionError):
            self.node._connection_to(restarted)


# What `$methods` says of the sample's Geometry.Measure (PROTOCOL.md, "Object values").
MEASURE = {
    "name": "Measure", "returns": "Geo.Measurement", "fingerprint": "0123456789abcdef", "contract": "Geo.IGeometry",
    "params": [{"name": "segment", "type": "Geo.Segment", "optional": False},
               {"name": "decimals", "type": "int", "optional": True, "default": 2}],
    "types": {
        "Geo.Point": {"layout": "array", "members": [{"name": "X", "key": 0, "type": "double", "required": False},
                                                     {"name": "Y", "key": 1, "type": "double", "required": False}]},
        "Geo.Segment": {"layout": "array", "members": [
            {"name": "From", "key": 0, "type": "Geo.Point", "required": True},
            {"name": "To", "key": 1, "type": "Geo.Point", "required": True},
            {"name": "Label", "key": 3, "type": "string", "required": False}]},
        "Geo.Measurement": {"layout": "map", "members": [
            {"name": "Label", "key": "label", "type": "string", "required": True},
            {"name": "Length", "key": "length", "type": "double", "required": False}]},
    },
}


class ObjectTests(unittest.TestCase):
    types = MEASURE["types"]

    def test_a_dict_of_members_becomes_the_array_form_nested_and_by_key(self):
        segment = {"From": {"X": 0, "Y": 0}, "To": [3, 4], "Label": "d"}
        self.assertEqual(p.build_kwargs(MEASURE, {"segment": segment}),
                         {"segment": [[0, 0], [3, 4], None, "d"]})  # key 2 is a gap: nil
        self.assertEqual(p.encode("Geo.Segment", {0: {"X": 1, "Y": 2}, 1: {"X": 3}}, self.types), [[1, 2], [3]])

    def test_collections_and_nullables_are_followed(self):
        points = [{"X": 1, "Y": 2}, None]
        self.assertEqual(p.encode("Geo.Point[]", points, self.types), [[1, 2], None])
        self.assertEqual(p.encode("System.Collections.Generic.List<Geo.Point>", points, self.types), [[1, 2], None])
        self.assertEqual(p.encode("System.Collections.Generic.Dictionary<string, Geo.Point[]>", {"a": [{"Y": 1, "X": 0}]},
                                  self.types), {"a": [[0, 1]]})
        self.assertEqual(p.encode("(int, Geo.Point)", (1, {"X": 5, "Y": 6}), self.types), [1, [5, 6]])

    def test_the_map_form_and_decoding_by_member_name(self):
        self.assertEqual(p.encode("Geo.Measurement", {"Label": "x", "length": 5.0}, self.types), {"label": "x", "length": 5.0})
        self.assertEqual(p.decode("Geo.Measurement", {"label": "x", "length": 5.0, "newer": 1}, self.types),
                         {"Label": "x", "Length": 5.0})
        self.assertEqual(p.decode("Geo.Segment[]", [[[0, 0], [3, 4], None, "d", "extra"]], self.types),
                         [{"From": {"X": 0, "Y": 0}, "To": {"X": 3, "Y": 4}, "Label": "d"}])

    def test_mistakes_are_named_before_anything_is_sent(self):
        with self.assertRaisesRegex(KeyError, "no member 'Z'"):
            p.encode("Geo.Point", {"Z": 1}, self.types)
        with self.assertRaisesRegex(ValueError, "member 'To' of Geo.Segment is required"):
            p.encode("Geo.Segment", {"From": [0, 0]}, self.types)
        with self.assertRaisesRegex(ValueError, "member 'X' .key 0. of Geo.Point must be given"):
            p.encode("Geo.Point", {"Y": 1}, self.types)
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'segments'"):
            p.build_kwargs(MEASURE, {"segments": {}})
        with self.assertRaisesRegex(TypeError, "missing required keyword arguments: segment"):
            p.build_kwargs(MEASURE, {"decimals": 1})
        with self.assertRaisesRegex(TypeError, "built from a dict"):
            p.encode("Geo.Measurement", ["x", 1.0], self.types)

    def test_the_fingerprint_of_the_example_in_the_spec(self):
        greet = {"name": "Greet", "signature": "Greet(name:string,)->string;"}
        add = {"name": "AddAsync", "signature": "AddAsync(a:int,b:int=,)->int;"}
        self.assertEqual(p.fingerprint([greet, add]), "e55b282aaf7bdb2d")
        self.assertEqual(p.fingerprint([add, greet]), "e55b282aaf7bdb2d")
        # One round per UTF-16 code unit, not per UTF-8 byte (which gives 65faa93a27c3bc8c); ContractShapeTests pins
        # the same value for the C# generator.
        unicode = [{"name": "Zähle", "signature": "Zähle()->int;"},
                   {"name": "Grüße", "signature": "Grüße(名前:string,)->string;"}]
        self.assertEqual(p.fingerprint(unicode), "bcb0d1801eb697f0")

    def test_dynamic_functions_take_any_kwargs_unchanged(self):
        dynamic = {"name": "greet", "params": [], "returns": "object", "fingerprint": None}
        self.assertEqual(p.build_kwargs(dynamic, {"name": {"X": 1}}), {"name": {"X": 1}})


if __name__ == "__main__":
    unittest.main()
