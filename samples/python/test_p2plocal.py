"""Unit tests of p2plocal.py's MessagePack codec, beacon format, objects, and connections and streams against fake
servers on loopback.

    cd samples/python && python3 -m unittest test_p2plocal

InteropTests run only against a real C# node that PythonClientTests starts (it sets P2PLOCAL_TARGET and
P2PLOCAL_DISCOVERY_PORT); without those they are skipped.

    cd samples/python && python3 -m unittest test_p2plocal
"""

import datetime
import os
import queue
import socket
import struct
import threading
import time
import unittest

import p2plocal as p


def eventually(read, expected, seconds=5):
    """read()'s value once it equals expected, or its last value after `seconds`: for a count a thread updates just after
    the send it counts, which the peer may already have read."""
    deadline = time.monotonic() + seconds
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.002)
        value = read()
    return value


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


def loopback_node():
    """A node in loopback scope on a discovery port the OS picked."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    udp.close()
    return p.Node("tester", discovery_port=port)


class ConnectionTests(unittest.TestCase):
    """Against a fake server on loopback that says idleTimeoutMs 2000 in its hello."""

    def setUp(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()
        self.node = loopback_node()
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


class FakeStreamServer:
    """A fake node on loopback: says hello with `features` (then its subscriptions `topics`, unless None), records
    each frame it reads, answers requests "ok", and hands stream requests to `serve(send, request, credits)`, where
    `credits` is a queue of the credits the client grants that stream."""

    def __init__(self, features, serve, instance_id, topics=None):
        self.features, self.serve, self.instance_id, self.topics = features, serve, instance_id, topics
        self.frames = queue.Queue()
        self.credits = queue.Queue()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()
        self.peer = p.Peer("fake", "127.0.0.1", self.server.getsockname()[1], instance_id, 3.0, 0, 0, False)

    def close(self):
        self.server.close()

    def _accept(self):
        try:
            sock, _ = self.server.accept()
        except OSError:
            return
        lock = threading.Lock()
        with sock:
            try:
                p._recv_frame(sock, 1 << 20)
                hello = [4, 1, "fake", self.instance_id, 1 << 20, 0] + ([self.features] if self.features is not None else [])
                p._send_frame(sock, lock, hello, 1 << 20)
                if self.topics is not None:
                    p._send_frame(sock, lock, [8, self.topics], 1 << 20)
                while True:
                    frame = p._recv_frame(sock, 1 << 20)
                    self.frames.put(frame)
                    if frame[0] == 6:
                        self.credits.put(frame[2])
                    elif frame[0] == 0:
                        p._send_frame(sock, lock, [1, frame[1], "ok"], 1 << 20)
                    elif frame[0] == 7:
                        send = lambda message: p._send_frame(sock, lock, message, 1 << 20)  # noqa: E731
                        threading.Thread(target=self.serve, args=(send, frame, self.credits), daemon=True).start()
            except (OSError, ValueError):
                pass

    def next_frame(self, kind):
        """The next frame of `kind` the server read (others are skipped); fails after 5 s."""
        while True:
            frame = self.frames.get(timeout=5)
            if frame[0] == kind:
                return frame


def produce(count, server_window=None, end=None):
    """A producer that sends `count` items 0, 1, ... with credit as PROTOCOL.md says (at most the smaller of the
    client's window and `server_window` unacknowledged), then `end(id)` (default: the nil result; None: nothing)."""
    def serve(send, request, credits):
        request_id, window = request[1], min(request[4], server_window or request[4])
        allowance = window
        for i in range(count):
            while allowance == 0:
                allowance += credits.get(timeout=5)
            send([5, request_id, i])
            allowance -= 1
        last = end(request_id) if end else [1, request_id, None]
        if last is not None:
            send(last)
    return serve


class FakePeerTestCase(unittest.TestCase):
    """A node, and the fake servers and sockets a test makes, closed after it."""

    def setUp(self):
        self.node = loopback_node()
        self.fakes, self.socks = [], []

    def tearDown(self):
        self.node.close()
        for closable in self.fakes + self.socks:
            closable.close()

    def fake(self, features, serve=None, topics=None):
        fake = FakeStreamServer(features, serve, "fake-%d" % len(self.fakes), topics)
        self.fakes.append(fake)
        return fake


class StreamTests(FakePeerTestCase):
    """Streamed results (PROTOCOL.md, "Streamed results") against fake servers."""

    def connect(self, serve, features=("extras", "stream", "events")):
        fake = self.fake(list(features) if features is not None else None, serve)
        return fake, self.node._connection_to(fake.peer)

    def test_a_peer_without_the_stream_feature_is_refused_at_once_and_sent_nothing(self):
        for features in (None, ["extras"]):
            fake, connection = self.connect(produce(3), features)
            with self.assertRaisesRegex(p.FeatureNotSupportedError, "does not offer the 'stream' feature") as caught:
                connection.stream("count", {}, 4, 5)
            self.assertEqual(caught.exception.feature, "stream")
            self.assertEqual(connection.call("f", {}).result(5), "ok")
            self.assertEqual(fake.frames.get(timeout=5)[0], 0)  # the call is the first frame after the hello
            self.assertTrue(fake.frames.empty())

    def test_items_arrive_in_order_and_credit_is_granted_only_for_items_read(self):
        fake, connection = self.connect(produce(10))
        stream = connection.stream("count", {"n": 10}, 4, 5)
        self.assertEqual(fake.next_frame(7)[2:], ["count", {"n": 10}, 4])
        self.assertEqual(list(stream), list(range(10)))
        self.assertTrue(stream.done())
        self.assertEqual(connection.call("f", {}).result(5), "ok")  # every credit was read before this call
        credits = []
        while not fake.frames.empty():
            frame = fake.frames.get()
            if frame[0] == 6:
                credits.append(frame)
        self.assertEqual({c[1] for c in credits}, {stream.id})
        # At most half a window at a time (less when the reader caught up and waits), never more than was read, and
        # enough for the 6 items beyond the window of 4.
        self.assertTrue(all(1 <= c[2] <= 2 for c in credits), credits)
        self.assertTrue(6 <= sum(c[2] for c in credits) <= 10, credits)

    def test_a_server_window_smaller_than_ours_does_not_stall_the_stream(self):
        # The server runs with 2 of our 64: credit must be granted before waiting, not only each 32 items read.
        fake, connection = self.connect(produce(10, server_window=2))
        self.assertEqual(list(connection.stream("count", {}, 64, 5)), list(range(10)))

    def test_the_producers_error_is_raised_after_its_items(self):
        boom = lambda request_id: [2, request_id, 1, "ValueError", "boom"]  # noqa: E731
        fake, connection = self.connect(produce(2, end=boom))
        stream = connection.stream("count", {}, 4, 5)
        self.assertEqual([next(stream), next(stream)], [0, 1])
        with self.assertRaisesRegex(p.RemoteError, "boom") as caught:
            next(stream)
        self.assertEqual((type(caught.exception), caught.exception.remote_type), (p.RemoteError, "ValueError"))
        self.assertEqual(list(stream), [])  # raised once, then the iteration ends
        missing = lambda request_id: [2, request_id, 2, "MethodNotFound", "no such function"]  # noqa: E731
        _, connection = self.connect(produce(0, end=missing))
        with self.assertRaises(p.MethodNotFoundError):
            list(connection.stream("count", {}, 4, 5))

    def test_no_item_within_the_timeout_cancels_the_stream_there(self):
        fake, connection = self.connect(produce(1, end=lambda request_id: None))
        stream = connection.stream("count", {}, 1, 0.3)
        self.assertEqual(next(stream), 0)
        with self.assertRaisesRegex(TimeoutError, "within 0.3 s; the stream was cancelled there"):
            next(stream)
        self.assertEqual(fake.next_frame(3), [3, stream.id])

    def test_stopping_early_cancels_the_stream_there(self):
        fake, connection = self.connect(produce(100))
        with connection.stream("count", {}, 4, 5) as stream:
            self.assertEqual(next(stream), 0)
        self.assertEqual(fake.next_frame(3), [3, stream.id])
        self.assertEqual(list(stream), [])
        for item in connection.stream("count", {}, 4, 5):  # dropped without close: collected, then cancelled
            break
        self.assertEqual(fake.next_frame(3)[0], 3)
        stream = connection.stream("count", {}, 4, 5)
        self.assertTrue(stream.cancel())
        self.assertEqual(fake.next_frame(3), [3, stream.id])
        with self.assertRaises(p.CallCancelledError):
            next(stream)
        self.assertFalse(stream.cancel())
        self.assertEqual(connection.call("f", {}).result(5), "ok")  # the connection stays

    def test_more_items_than_granted_closes_the_connection(self):
        def flood(send, request, credits):
            for i in range(request[4] + 1):
                send([5, request[1], i])
        fake, connection = self.connect(flood)
        stream = connection.stream("count", {}, 2, 5)
        deadline = time.monotonic() + 5
        while not stream.done() and time.monotonic() < deadline:  # read nothing until the third item closed it
            time.sleep(0.01)
        self.assertEqual([next(stream), next(stream)], [0, 1])
        with self.assertRaisesRegex(p.PeerConnectionError, "more items of 'count' .stream 1. than the window of 2"):
            next(stream)
        self.assertTrue(connection.closed)

    def test_a_window_outside_1_to_2_to_the_32_is_refused(self):
        for window in (0, -1, 2**32, 1.5, True):
            with self.assertRaises(ValueError):
                self.node.stream("anyone", "count", window=window)


class EventTests(FakePeerTestCase):
    """Events (PROTOCOL.md, "Events"): publishing to fake servers, subscribing for a raw caller, on loopback."""

    def fake_peer(self, features, topics):
        fake = self.fake(features, topics=topics)
        fake.peer.last_seen = time.monotonic()
        with self.node._peers_changed:
            self.node._peers[fake.peer.key] = fake.peer  # as if its beacon had come
        return fake

    def test_an_event_goes_only_to_a_peer_whose_list_names_its_topic_in_order(self):
        fake = self.fake_peer(["extras", "stream", "events"], ["a", "", 5, "c" * 257])  # bad topics are skipped
        self.assertEqual(self.node.publish("a", 1), 1)  # its list is not known yet: queued
        self.assertEqual(fake.next_frame(9), [9, "a", 1])
        self.assertEqual(self.node.publish("b", 2), 0)  # known not to listen: not even queued
        for i in range(20):
            self.assertEqual(self.node.publish("a", i), 1)
        self.assertEqual([fake.next_frame(9) for _ in range(20)], [[9, "a", i] for i in range(20)])
        self.assertEqual(eventually(lambda: self.node.event_statistics()["sent"], 21), 21)

    def test_a_peer_without_the_events_feature_is_sent_no_event(self):
        fake = self.fake_peer(["extras", "stream"], None)
        self.node.publish("a", 1)  # queued until its hello says it takes no events; then dropped unsent
        connection = self.node._connection_to(fake.peer)
        self.assertEqual(connection.call("f", {}).result(5), "ok")
        self.assertEqual(self.node.publish("a", 2), 0)
        self.assertEqual(connection.call("f", {}).result(5), "ok")
        self.assertEqual([fake.frames.get(timeout=5)[0] for _ in range(2)], [0, 0])
        self.assertTrue(fake.frames.empty())

    def test_bad_topics_and_large_events_are_refused_before_anything_is_queued(self):
        for topic in ("", "x" * 257, "é" * 129, 5, None):
            with self.assertRaises(ValueError):
                self.node.publish(topic, 1)
            with self.assertRaises(ValueError):
                self.node.subscribe(topic, print)
        with self.assertRaises(p.FrameTooLargeError):
            self.node.publish("a", b"x" * (64 * 1024))
        self.assertEqual(self.node.publish("é" * 128, 1), 0)  # 256 bytes: a topic; nobody listens

    def caller(self, features):
        """A raw caller connected to the node: returns (send, receive) of frames, after the hellos."""
        sock = socket.create_connection(("127.0.0.1", self.node.port), timeout=5)
        self.socks.append(sock)
        lock = threading.Lock()
        p._send_frame(sock, lock, [4, 1, "raw", "raw-1", 1 << 20, 0] + ([features] if features is not None else []),
                      1 << 20)
        hello = p._recv_frame(sock, 1 << 20)
        self.assertIn("events", hello[6])
        self.assertNotIn("stream", hello[6])  # this node does not serve streams
        return (lambda message: p._send_frame(sock, lock, message, 1 << 20)), (lambda: p._recv_frame(sock, 1 << 20))

    def test_a_caller_that_takes_events_is_told_the_topics_and_its_events_reach_the_handlers_in_order(self):
        send, receive = self.caller(["events"])
        self.assertEqual(receive(), [8, []])
        got, failures = queue.Queue(), []

        def handler(value):
            if value == "fail":
                failures.append(value)
                raise RuntimeError("a handler's failure is counted, not fatal")
            got.put(value)
        subscription = self.node.subscribe("t", handler)
        self.assertEqual(receive(), [8, ["t"]])
        with self.node.subscribe("u", print):
            self.assertEqual(receive(), [8, ["t", "u"]])
        self.assertEqual(receive(), [8, ["t"]])
        for value in [1, "fail", 2, {"x": [3]}]:
            send([9, "t", value, "an element a later version may add"])
        send([9, "x", "nobody listens"])
        send([9, 7, "not a topic: dropped"])
        send([9, "t", b"x" * (64 * 1024)])  # above the 64 KiB of an event: dropped
        self.assertEqual([got.get(timeout=5) for _ in range(3)], [1, 2, {"x": [3]}])
        self.assertEqual(failures, ["fail"])
        subscription.close()
        subscription.close()
        self.assertEqual(receive(), [8, []])
        self.assertEqual(self.node.event_statistics()["handler_failures"], 1)
        self.assertEqual(self.node.event_statistics()["received"], 4)
        send([9, "t"])  # too short: a bad frame closes the connection
        with self.assertRaises(ConnectionError):
            receive()

    def test_a_caller_that_does_not_take_events_is_sent_no_topics(self):
        self.node.subscribe("t", print)
        send, receive = self.caller(None)
        send([0, 1, "$methods", {}])
        self.assertEqual(receive()[:2], [1, 1])  # the reply is the first frame after the hello


@unittest.skipUnless(os.environ.get("P2PLOCAL_TARGET"), "needs the C# node that PythonClientTests starts")
class InteropTests(unittest.TestCase):
    """Against the C# node of PythonClientTests, whose functions are:
    count(n): streams 0..n-1, counting what it produced; progress(read): that count, after this side read `read`
    items (the node keeps the largest lead); endless(): streams until cancelled; endless_cancelled(): true once the
    endless producer's token fired; failing(): streams 0, 1, 2 and throws; greet(name): one result;
    publish(topic, start, n): publishes start, start + 1, ... (n values); events_received(): the 20 values it got
    on "cs.topic", once they came. Its StreamWindow is SERVER_WINDOW."""

    SERVER_WINDOW = 8

    @classmethod
    def setUpClass(cls):
        cls.target = os.environ["P2PLOCAL_TARGET"]
        cls.node = p.Node("py-interop-%d" % os.getpid(), discovery_port=int(os.environ["P2PLOCAL_DISCOVERY_PORT"]))
        cls.node.wait_for(cls.target)

    @classmethod
    def tearDownClass(cls):
        cls.node.close()

    def test_items_arrive_in_order_and_the_producer_stays_within_the_window_of_the_reading(self):
        window, read = 4, 0
        for item in self.node.stream(self.target, "count", {"n": 60}, window=window):
            self.assertEqual(item, read)
            read += 1
            produced = self.node.request(self.target, "progress", read=read)
            self.assertLessEqual(produced, read + window + 1, "the producer ran ahead of the reading")
        self.assertEqual(read, 60)
        self.assertEqual(list(self.node.request_stream(self.target, "count", n=5)), [0, 1, 2, 3, 4])

    def test_a_window_above_the_servers_does_not_stall(self):
        # The node runs the stream with its own window of 8, below our 64: credit must not wait for 32 items read.
        items = list(self.node.stream(self.target, "count", {"n": 100}, window=64, timeout=30))
        self.assertEqual(items, list(range(100)))

    def test_stopping_early_fires_the_producers_token(self):
        with self.node.stream(self.target, "endless", window=4) as stream:
            self.assertEqual([next(stream) for _ in range(3)], [0, 1, 2])
        self.assertTrue(self.node.request(self.target, "endless_cancelled"))

    def test_the_producers_error_arrives_after_its_items(self):
        stream = self.node.stream(self.target, "failing", window=2)
        self.assertEqual([next(stream), next(stream), next(stream)], [0, 1, 2])
        with self.assertRaisesRegex(p.RemoteError, "boom after 3 items") as caught:
            next(stream)
        self.assertEqual((caught.exception.code, caught.exception.remote_type),
                         (1, "System.InvalidOperationException"))

    def test_events_from_the_csharp_node_arrive_in_order(self):
        got = queue.Queue()
        with self.node.subscribe("py.topic", got.put):
            # The node publishes only once our list reached it (a round trip): ask for markers until one arrives.
            deadline = time.monotonic() + 10
            while got.empty() and time.monotonic() < deadline:
                self.node.request(self.target, "publish", topic="py.topic", start=-1, n=1)
                try:
                    got.put(got.get(timeout=0.2))
                except queue.Empty:
                    pass
            self.node.request(self.target, "publish", topic="py.topic", start=0, n=20)
            values = []
            while len(values) < 20:
                value = got.get(timeout=10)
                if value >= 0:  # markers come first: one publisher's events keep their order
                    values.append(value)
        self.assertEqual(values, list(range(20)))

    def test_events_to_the_csharp_node_arrive_in_order_and_only_on_its_topics(self):
        self.assertEqual([self.node.publish("cs.topic", i) for i in range(20)], [1] * 20)
        self.assertEqual(self.node.request(self.target, "events_received"), list(range(20)))
        self.assertEqual(self.node.publish("nobody.listens", 1), 0)

    def test_a_function_that_does_not_stream_is_error_2(self):
        with self.assertRaises(p.MethodNotFoundError):
            list(self.node.request_stream(self.target, "greet", name="Ann"))
        self.assertEqual(self.node.request(self.target, "greet", name="Ann"), "Hello, Ann!")  # the connection stays


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
