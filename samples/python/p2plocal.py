"""A P2PLocal.Rpc node in Python: standard library only (Python 3.8+).

Written from PROTOCOL.md (wire protocol version 1). It finds nodes with UDP beacons, calls their functions by name
with kwargs (dynamic and generated functions alike), pipelines calls on one TCP connection per peer, cancels them,
lists a peer's functions, reads streamed results with flow control, publishes and subscribes to events, raises each
wire error as its own exception, and serves Python functions to other nodes.

    import p2plocal
    with p2plocal.Node("py", discovery_port=47474) as node:      # loopback scope by default
        node.wait_for("bob")
        print(node.request("bob", "greet", name="Ann"))
        call = node.call("bob", "slow", {"ms": 60000})           # a pending call
        call.cancel()                                           # sends a cancel; the handler's token fires there
        # [MessagePackObject] kwargs from dicts of members, by the peer's own description of them ($methods):
        print(node.invoke("bob", "Measure", segment={"From": {"X": 0, "Y": 0}, "To": {"X": 3, "Y": 4}}))
        for item in node.request_stream("bob", "count", n=10):   # a streamed result, read as it arrives
            print(item)
        node.subscribe("prices", print)                          # events other nodes publish on "prices"
        node.publish("orders", {"id": 7})                        # to every peer that subscribes to "orders"

Thread-safe: any thread may call, and calls may overlap. Close the node (or leave the `with` block) to send a
goodbye and release its sockets and threads.
"""

import collections
import datetime
import itertools
import secrets
import socket
import struct
import threading
import time

__all__ = [
    "Node", "Call", "Peer", "P2PError", "PeerNotFoundError", "NameConflictError", "PeerConnectionError",
    "RemoteError", "MethodNotFoundError", "InvalidKwargsError", "PeerBusyError", "RemoteCancelledError",
    "FrameTooLargeError", "ShuttingDownError", "BadRequestError", "CallCancelledError", "FeatureNotSupportedError",
    "Stream", "Subscription",
    "pack", "unpack", "encode", "decode", "build_kwargs", "fingerprint", "PROTOCOL_VERSION",
]

PROTOCOL_VERSION = 1                  # hello element 1
DEFAULT_PROTOCOL = "itecnet"          # beacon field 0
DEFAULT_DISCOVERY_PORT = 47474
MARKER = "p2p1"                       # beacon field 3
MAX_BEACON = 1024
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
MIN_FRAME = 1024                      # the smallest maxFrameSize a hello may say
MAX_HELLO_FRAME = 16 * 1024           # the largest frame read before the hello
LOOPBACK_BROADCAST = "127.255.255.255"
REQUEST, RESULT, ERROR, CANCEL, HELLO = 0, 1, 2, 3, 4
STREAM_ITEM, STREAM_CREDIT, STREAM_REQUEST = 5, 6, 7
STREAM_FEATURE = "stream"             # hello features (element 6): the peer takes stream requests
DEFAULT_STREAM_WINDOW = 64
SUBSCRIPTIONS, EVENT = 8, 9
EVENTS_FEATURE = "events"             # hello features: the sender takes events and announces its subscriptions
MAX_TOPIC_BYTES = 256                 # a topic is 1 to 256 UTF-8 bytes
MAX_TOPICS = 256                      # topics kept of a peer's list, and this node's own limit
MAX_EVENT_SIZE = 64 * 1024            # the largest event frame (length prefix included) sent or handled
MAX_QUEUED_EVENTS = 1024              # per peer (publishing) and per incoming connection (subscribing)
MAX_UINT32 = 0xFFFFFFFF
ANSWER_SPACING = 0.020                # at most one answer to hellos per 20 ms
MAX_DEPTH = 64                        # nesting a decoded value may have
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


# ----------------------------------------------------------------------------------------------------- errors

class P2PError(Exception):
    """Base of every error this module raises about a peer or a call."""


class PeerNotFoundError(P2PError):
    """No live peer of that name is known (never seen, left, or expired)."""


class NameConflictError(P2PError):
    """Two live nodes claim the name, or an older live node uses this node's own name."""


class PeerConnectionError(P2PError):
    """The peer cannot be reached, refused the hello, or the connection dropped before the reply."""


class RemoteError(P2PError):
    """The peer answered with an error frame. `code`, `remote_type` and `remote_message` are its fields."""

    def __init__(self, code, remote_type, remote_message, function=None, peer=None):
        super().__init__("%s.%s failed (error %d, %s): %s" % (peer, function, code, remote_type, remote_message))
        self.code = code
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.function = function
        self.peer = peer


class MethodNotFoundError(RemoteError):
    """Error 2: the peer has no such function."""


class InvalidKwargsError(RemoteError):
    """Error 3: the peer rejected the kwargs (missing, unknown, duplicate, wrong type)."""


class PeerBusyError(RemoteError):
    """Error 4: the connection already runs as many requests as the peer allows."""


class RemoteCancelledError(RemoteError):
    """Error 5: the peer cancelled the handler (it is shutting down, or the caller cancelled)."""


class FrameTooLargeError(RemoteError):
    """Error 6 from the peer (its result is above a frame limit), or a request too large to send."""

    def __init__(self, code=6, remote_type="FrameTooLarge", remote_message="", function=None, peer=None):
        super().__init__(code, remote_type, remote_message, function, peer)


class ShuttingDownError(RemoteError):
    """Error 7: the peer is shutting down and takes no new requests."""


class BadRequestError(RemoteError):
    """Error 8: the peer refused a frame of ours (on a hello: the connection)."""


class CallCancelledError(P2PError):
    """This side cancelled the call (Call.cancel, Stream.cancel)."""


class FeatureNotSupportedError(P2PError):
    """The peer's hello does not offer a feature the call needs (an older node, or another implementation without
    it); nothing was sent. `feature` names it, e.g. "stream"."""

    def __init__(self, message, feature):
        super().__init__(message)
        self.feature = feature


_ERRORS = {2: MethodNotFoundError, 3: InvalidKwargsError, 4: PeerBusyError, 5: RemoteCancelledError,
           6: FrameTooLargeError, 7: ShuttingDownError, 8: BadRequestError}


# ------------------------------------------------------------------------------------------------ MessagePack

def pack(value):
    """Encodes a value as MessagePack: None, bool, int, float (float64), str, bytes, list/tuple, dict, datetime."""
    out = bytearray()
    _pack(value, out, 0)
    return bytes(out)


def _pack(v, out, depth):
    if depth > MAX_DEPTH:
        raise ValueError("value nests deeper than %d levels" % MAX_DEPTH)
    if v is None:
        out.append(0xC0)
    elif v is True:
        out.append(0xC3)
    elif v is False:
        out.append(0xC2)
    elif isinstance(v, int):
        _pack_int(v, out)
    elif isinstance(v, float):
        out.append(0xCB)
        out += struct.pack(">d", v)
    elif isinstance(v, str):
        data = v.encode("utf-8")
        if len(data) < 32:
            out.append(0xA0 | len(data))
        else:
            _pack_length(len(data), 0xD9, out)
        out += data
    elif isinstance(v, (bytes, bytearray, memoryview)):
        data = bytes(v)
        _pack_length(len(data), 0xC4, out)
        out += data
    elif isinstance(v, (list, tuple)):
        _pack_header(len(v), 0x90, 0xDC, out)
        for item in v:
            _pack(item, out, depth + 1)
    elif isinstance(v, dict):
        _pack_header(len(v), 0x80, 0xDE, out)
        for key, item in v.items():
            _pack(key, out, depth + 1)
            _pack(item, out, depth + 1)
    elif isinstance(v, datetime.datetime):
        _pack_timestamp(v, out)
    else:
        raise TypeError("cannot send a %s; use None, bool, int, float, str, bytes, list, dict or datetime"
                        % type(v).__name__)


def _pack_length(n, code8, out):
    """The 8-, 16- or 32-bit length of a str (code8 0xD9) or bin (code8 0xC4): codes code8, code8+1, code8+2."""
    if n < 0x100:
        out += struct.pack(">BB", code8, n)
    elif n < 0x10000:
        out += struct.pack(">BH", code8 + 1, n)
    else:
        out += struct.pack(">BI", code8 + 2, n)


def _pack_header(n, fix, code16, out):
    if n < 16:
        out.append(fix | n)
    elif n < 0x10000:
        out += struct.pack(">BH", code16, n)
    else:
        out += struct.pack(">BI", code16 + 1, n)


_UNSIGNED = ((1 << 8, 0xCC, ">BB"), (1 << 16, 0xCD, ">BH"), (1 << 32, 0xCE, ">BI"), (1 << 64, 0xCF, ">BQ"))
_SIGNED = ((1 << 7, 0xD0, ">Bb"), (1 << 15, 0xD1, ">Bh"), (1 << 31, 0xD2, ">Bi"), (1 << 63, 0xD3, ">Bq"))


def _pack_int(v, out):
    if 0 <= v < 0x80:
        out.append(v)
    elif -32 <= v < 0:
        out += struct.pack(">b", v)
    elif v >= 0:
        for limit, code, fmt in _UNSIGNED:
            if v < limit:
                out += struct.pack(fmt, code, v)
                return
        raise OverflowError("%d does not fit in 64 bits" % v)
    else:
        for limit, code, fmt in _SIGNED:
            if v >= -limit:
                out += struct.pack(fmt, code, v)
                return
        raise OverflowError("%d does not fit in 64 bits" % v)


def _pack_timestamp(v, out):
    # The timestamp extension (-1); a naive datetime is taken as UTC.
    if v.tzinfo is None:
        v = v.replace(tzinfo=datetime.timezone.utc)
    delta = v - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    nanos = delta.microseconds * 1000
    if nanos == 0 and 0 <= seconds < 1 << 32:
        out += struct.pack(">BbI", 0xD6, -1, seconds)
    elif 0 <= seconds < 1 << 34:
        out += struct.pack(">BbQ", 0xD7, -1, (nanos << 34) | seconds)
    else:
        out += struct.pack(">BBbIq", 0xC7, 12, -1, nanos, seconds)


def unpack(data):
    """Decodes one MessagePack value that fills `data` exactly; raises ValueError on anything malformed."""
    value, end = _Unpacker(data).read(0, 0)
    if end != len(data):
        raise ValueError("%d bytes follow the value" % (len(data) - end))
    return value


class _Unpacker:
    """Reads MessagePack from untrusted bytes: lengths are checked against the data, nesting is bounded."""

    def __init__(self, data):
        self.data = memoryview(data)

    def _take(self, pos, n):
        if n < 0 or pos + n > len(self.data):
            raise ValueError("truncated MessagePack: %d bytes needed at offset %d" % (n, pos))
        return self.data[pos:pos + n], pos + n

    def _unpack(self, fmt, pos):
        raw, end = self._take(pos, struct.calcsize(fmt))
        return struct.unpack(fmt, raw)[0], end

    def read(self, pos, depth):
        if depth > MAX_DEPTH:
            raise ValueError("MessagePack nests deeper than %d levels" % MAX_DEPTH)
        raw, pos = self._take(pos, 1)
        c = raw[0]
        if c <= 0x7F:
            return c, pos
        if c >= 0xE0:
            return c - 0x100, pos
        if 0xA0 <= c <= 0xBF:
            return self._str(pos, c & 0x1F)
        if 0x90 <= c <= 0x9F:
            return self._array(pos, c & 0x0F, depth)
        if 0x80 <= c <= 0x8F:
            return self._map(pos, c & 0x0F, depth)
        if c == 0xC0:
            return None, pos
        if c == 0xC2:
            return False, pos
        if c == 0xC3:
            return True, pos
        fixed = _FIXED.get(c)
        if fixed is not None:
            return self._unpack(fixed, pos)
        if c in (0xD9, 0xDA, 0xDB):
            n, pos = self._unpack(_LEN[c], pos)
            return self._str(pos, n)
        if c in (0xC4, 0xC5, 0xC6):
            n, pos = self._unpack(_LEN[c], pos)
            raw, pos = self._take(pos, n)
            return bytes(raw), pos
        if c in (0xDC, 0xDD):
            n, pos = self._unpack(_LEN[c], pos)
            return self._array(pos, n, depth)
        if c in (0xDE, 0xDF):
            n, pos = self._unpack(_LEN[c], pos)
            return self._map(pos, n, depth)
        if c in _FIXEXT:
            return self._ext(pos, _FIXEXT[c])
        if c in (0xC7, 0xC8, 0xC9):
            n, pos = self._unpack(_LEN[c], pos)
            return self._ext(pos, n)
        raise ValueError("MessagePack code 0x%02x is not valid" % c)

    def _str(self, pos, n):
        raw, pos = self._take(pos, n)
        return bytes(raw).decode("utf-8"), pos

    def _array(self, pos, n, depth):
        if n > len(self.data) - pos:  # every element takes at least one byte
            raise ValueError("array of %d elements in %d bytes" % (n, len(self.data) - pos))
        items = []
        for _ in range(n):
            item, pos = self.read(pos, depth + 1)
            items.append(item)
        return items, pos

    def _map(self, pos, n, depth):
        if 2 * n > len(self.data) - pos:
            raise ValueError("map of %d entries in %d bytes" % (n, len(self.data) - pos))
        result = {}
        for _ in range(n):
            key, pos = self.read(pos, depth + 1)
            if isinstance(key, (list, dict)):
                raise ValueError("a map key is an array or a map")
            if key in result:
                raise ValueError("map key %r appears twice" % (key,))
            result[key], pos = self.read(pos, depth + 1)
        return result, pos

    def _ext(self, pos, n):
        code, pos = self._unpack(">b", pos)
        raw, pos = self._take(pos, n)
        if code != -1:
            raise ValueError("MessagePack extension type %d is not supported" % code)
        if n == 4:
            seconds, nanos = struct.unpack(">I", raw)[0], 0
        elif n == 8:
            both = struct.unpack(">Q", raw)[0]
            seconds, nanos = both & ((1 << 34) - 1), both >> 34
        elif n == 12:
            nanos, seconds = struct.unpack(">Iq", raw)
        else:
            raise ValueError("a timestamp has 4, 8 or 12 bytes, not %d" % n)
        # Python keeps microseconds: the last three digits of the nanoseconds are cut.
        try:
            return _EPOCH + datetime.timedelta(seconds=seconds, microseconds=nanos // 1000), pos
        except OverflowError:
            raise ValueError("timestamp %d s is outside the years 1-9999 that Python can hold" % seconds) from None


_FIXED = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
          0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_LEN = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I", 0xDC: ">H", 0xDD: ">I",
        0xDE: ">H", 0xDF: ">I", 0xC7: ">B", 0xC8: ">H", 0xC9: ">I"}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


# --------------------------------------------------------------------------------------------------- objects
# A [MessagePackObject] kwarg or result travels as an array indexed by integer keys, or a map of string keys; the
# "types" of a function's `$methods` entry says which, with each member's key, name and type (PROTOCOL.md,
# "Object values"). These helpers turn a dict of members into that form and back, following the type grammar of
# "Contract fingerprints" through arrays, lists, dictionaries, nullables and tuples.

_VALUE_KEYWORDS = {"bool", "byte", "sbyte", "short", "ushort", "int", "uint", "long", "ulong", "float", "double",
                   "decimal", "char"}
_GENERIC = "System.Collections.Generic."
_LISTS = {_GENERIC + n for n in ("List", "IList", "IReadOnlyList", "ICollection", "IReadOnlyCollection",
                                 "IEnumerable", "HashSet", "ISet")}
_DICTS = {_GENERIC + n for n in ("Dictionary", "IDictionary", "IReadOnlyDictionary")}


def _split_types(text):
    """Splits `A, B<C, D>` at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "<([":
            depth += 1
        elif c in ">)]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _convert(type_name, value, types, to_wire):
    if value is None:
        return None
    if type_name in types:
        return (_encode_object if to_wire else _decode_object)(type_name, value, types)
    if type_name.endswith("?"):
        return _convert(type_name[:-1], value, types, to_wire)
    if type_name.endswith("[]") and isinstance(value, (list, tuple)):
        return [_convert(type_name[:-2], v, types, to_wire) for v in value]
    if type_name.startswith("(") and type_name.endswith(")") and isinstance(value, (list, tuple)):
        elements = _split_types(type_name[1:-1])
        return [_convert(t, v, types, to_wire) for t, v in zip(elements, value)] + list(value[len(elements):])
    open_at = type_name.find("<")
    if open_at > 0 and type_name.endswith(">"):
        generic, arguments = type_name[:open_at], _split_types(type_name[open_at + 1:-1])
        if generic in _LISTS and len(arguments) == 1 and isinstance(value, (list, tuple, set, frozenset)):
            return [_convert(arguments[0], v, types, to_wire) for v in value]
        if generic in _DICTS and len(arguments) == 2 and isinstance(value, dict):
            return {k: _convert(arguments[1], v, types, to_wire) for k, v in value.items()}
    return value


def _encode_object(name, value, types):
    described = types[name]
    members = described.get("members") or []
    is_map = described.get("layout") == "map"
    if isinstance(value, (list, tuple)) and not is_map:
        return list(value)  # already in the array form
    if not isinstance(value, dict):
        raise TypeError("%s is built from a dict of its members, not from %s" % (name, type(value).__name__))
    by_name = {m["name"]: m for m in members}
    by_key = {m["key"]: m for m in members}
    given = {}
    for key, member_value in value.items():
        member = by_name.get(key) or by_key.get(key)
        if member is None:
            raise KeyError("%s has no member %r; its members are %s" % (name, key, ", ".join(m["name"] for m in members)))
        given[member["key"]] = _convert(member["type"], member_value, types, True)
    for member in members:
        if member.get("required") and given.get(member["key"]) is None:
            raise ValueError("member %r of %s is required: it must be given and not None" % (member["name"], name))
    if is_map:
        return given
    # Array form: element n is the member with key n. Members after the last one given are left out (the receiver
    # gives them their defaults); a gap before it is sent as nil, which a member of a value type cannot take.
    length = max(given) + 1 if given else 0
    for member in members:
        if member["key"] < length and member["key"] not in given and member["type"] in _VALUE_KEYWORDS:
            raise ValueError("member %r (key %d) of %s must be given when a member after it is: nil is not a %s"
                             % (member["name"], member["key"], name, member["type"]))
    wire = [None] * length
    for key, member_value in given.items():
        wire[key] = member_value
    return wire


def _decode_object(name, value, types):
    described = types[name]
    members = described.get("members") or []
    if described.get("layout") == "map" and isinstance(value, dict):
        return {m["name"]: _convert(m["type"], value[m["key"]], types, False) for m in members if m["key"] in value}
    if described.get("layout") == "array" and isinstance(value, list):
        return {m["name"]: _convert(m["type"], value[m["key"]], types, False) for m in members
                if isinstance(m["key"], int) and 0 <= m["key"] < len(value)}
    return value


def encode(type_name, value, types):
    """`value` in the wire form of `type_name`: dicts of members (by name or key) become the array or map that
    `types` (a `$methods` entry's "types") describes, through arrays, lists, dictionaries and nullables."""
    return _convert(type_name, value, types or {}, True)


def decode(type_name, value, types):
    """The inverse of `encode`: objects of a described type become dicts keyed by member name."""
    return _convert(type_name, value, types or {}, False)


def fingerprint(functions):
    """The contract fingerprint (PROTOCOL.md, "Contract fingerprints") of one contract's `$methods` entries: their
    `signature`s in ordinal order of name, hashed with 64-bit FNV-1a, one round per UTF-16 code unit."""
    ordered = sorted(functions, key=lambda f: f["name"].encode("utf-16-be"))  # ordinal by UTF-16 code unit
    text = "".join(f["signature"] for f in ordered).encode("utf-16-le")
    h = 0xCBF29CE484222325
    for i in range(0, len(text), 2):
        h = ((h ^ (text[i] | text[i + 1] << 8)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def build_kwargs(function, kwargs):
    """The kwargs map for a call of `function` (a `$methods` entry): checks the kwarg names as Python checks a call,
    and encodes each value by its parameter's type. A dynamic function takes any kwargs, unchanged."""
    params = function.get("params") or []
    if function.get("fingerprint") is None and not params:
        return dict(kwargs)
    known = {p["name"]: p for p in params}
    for name in kwargs:
        if name not in known:
            raise TypeError("%s() got an unexpected keyword argument %r" % (function["name"], name))
    missing = [p["name"] for p in params if not p.get("optional") and p["name"] not in kwargs]
    if missing:
        raise TypeError("%s() is missing required keyword arguments: %s" % (function["name"], ", ".join(missing)))
    types = function.get("types") or {}
    return {name: encode(known[name]["type"], value, types) for name, value in kwargs.items()}


# ------------------------------------------------------------------------------------------------- discovery

class Peer:
    """A node seen in beacons. `legacy` peers are Python p2p-local nodes (XML-RPC): they cannot be called."""

    __slots__ = ("name", "host", "port", "instance_id", "interval", "started_ms", "last_seen", "legacy")

    def __init__(self, name, host, port, instance_id, interval, started_ms, last_seen, legacy):
        self.name, self.host, self.port, self.instance_id = name, host, port, instance_id
        self.interval, self.started_ms, self.last_seen, self.legacy = interval, started_ms, last_seen, legacy

    @property
    def key(self):
        return "legacy:%s:%d" % (self.host, self.port) if self.legacy else self.instance_id

    def __repr__(self):
        return "Peer(%r at %s:%d, instance %r)" % (self.name, self.host, self.port, self.instance_id)


def format_beacon(protocol, name, host, port, instance_id, kind, interval_ms, started_ms):
    """The text of one beacon (PROTOCOL.md, Discovery): eight fields separated by '|'."""
    address = "[%s]" % host if ":" in host else host
    text = "|".join([protocol, name, "%s:%d" % (address, port), MARKER, instance_id, kind,
                     str(interval_ms), str(started_ms)])
    return text.encode("utf-8")


def parse_beacon(datagram):
    """Returns a dict of the beacon's fields, or None for anything that is not a beacon."""
    if not 0 < len(datagram) <= MAX_BEACON:
        return None
    try:
        fields = datagram.decode("utf-8").split("|")
    except UnicodeDecodeError:
        return None
    if len(fields) < 3 or not fields[0] or not fields[1]:
        return None
    host, sep, port = fields[2].rpartition(":")
    if not sep or not _digits(port) or not 0 < int(port) < 65536:
        return None
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return None
    beacon = {"protocol": fields[0], "name": fields[1], "host": host, "port": int(port)}
    if len(fields) < 8 or fields[3] != MARKER:
        beacon["kind"] = "legacy"
        return beacon
    if (fields[5] not in ("hello", "alive", "bye") or not 1 <= len(fields[4]) <= 64
            or not _digits(fields[6]) or not _digits(fields[7]) or not 1 <= int(fields[6]) <= 86400000):
        return None
    beacon.update(instance_id=fields[4], kind=fields[5], interval_ms=int(fields[6]), started_ms=int(fields[7]))
    return beacon


def _digits(text):
    return text.isascii() and text.isdigit()


def _check_window(window):
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_UINT32:
        raise ValueError("a stream window is an int from 1 to 2^32-1 items, not %r" % (window,))
    return window


def _topic_problem(topic):
    """Why `topic` is not a topic (a str of 1 to 256 UTF-8 bytes), or None."""
    if not isinstance(topic, str):
        return "a topic is a str, not %s" % type(topic).__name__
    if not 1 <= len(topic.encode("utf-8", "surrogatepass")) <= MAX_TOPIC_BYTES:
        return "a topic is 1 to %d UTF-8 bytes, not %d" % (MAX_TOPIC_BYTES, len(topic.encode("utf-8", "surrogatepass")))
    return None


class _OrderedWorker:
    """A bounded queue whose items one thread hands to `work`, in order; the thread runs only while there is work.
    An item beyond `limit` is refused (the caller counts the drop)."""

    def __init__(self, name, work, limit=MAX_QUEUED_EVENTS):
        self._name, self._work, self._limit = name, work, limit
        self._lock = threading.Lock()
        self._items = collections.deque()
        self._running = False
        self._stopped = False

    def offer(self, item):
        with self._lock:
            if self._stopped or len(self._items) >= self._limit:
                return False
            self._items.append(item)
            if self._running:
                return True
            self._running = True
        threading.Thread(target=self._run, name=self._name, daemon=True).start()
        return True

    def stop(self):
        """Drops what is queued and refuses what comes."""
        with self._lock:
            self._stopped = True
            self._items.clear()

    def _run(self):
        while True:
            with self._lock:
                if not self._items:
                    self._running = False
                    return
                item = self._items.popleft()
            self._work(item)


def _is_loopback(host):
    return host.startswith("127.") or host == "::1"


# ------------------------------------------------------------------------------------------------- framing

def _send_frame(sock, lock, message, limit):
    _send_payload(sock, lock, pack(message), limit)


def _send_payload(sock, lock, payload, limit):
    if len(payload) > limit:
        raise FrameTooLargeError(remote_message="the message is %d bytes; the frame limit is %d bytes"
                                 % (len(payload), limit))
    with lock:
        sock.sendall(struct.pack(">I", len(payload)) + payload)


def _shut(sock):
    """Closes a socket so that a thread blocked reading it wakes up."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _recv_exact(sock, n):
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv_frame(sock, limit):
    """Reads one frame and decodes its array; raises ValueError for a length outside 1..limit or bad data."""
    return _recv_sized_frame(sock, limit)[0]


def _recv_sized_frame(sock, limit):
    """`_recv_frame`, and the frame's length with its prefix."""
    length = struct.unpack(">I", _recv_exact(sock, 4))[0]
    if not 0 < length <= limit:
        raise ValueError("frame length %d is outside 1..%d" % (length, limit))
    message = unpack(_recv_exact(sock, length))
    if not isinstance(message, list) or len(message) < 2 or not isinstance(message[0], int):
        raise ValueError("a message is an array that starts with its kind")
    return message, length + 4


def _check_hello(message):
    """Validates a hello (PROTOCOL.md, Hello); returns (name, instance_id, max_frame, idle_ms, features)."""
    if message[0] == ERROR and len(message) >= 5:
        raise BadRequestError(message[2], message[3], message[4])
    if message[0] != HELLO or len(message) < 5:
        raise ValueError("the first frame must be a hello")
    _, version, name, instance_id, max_frame = message[:5]
    idle_ms = message[5] if len(message) > 5 and isinstance(message[5], int) else 0
    # Element 6, features: strings naming what the sender accepts beyond version 1; others are skipped.
    listed = message[6] if len(message) > 6 and isinstance(message[6], list) else []
    features = frozenset(f for f in listed if isinstance(f, str))
    if version != PROTOCOL_VERSION:
        raise ValueError("hello version %r; this node speaks version %d" % (version, PROTOCOL_VERSION))
    if not isinstance(name, str) or not isinstance(instance_id, str):
        raise ValueError("hello name and instance id must be strings")
    if len(name.encode("utf-8")) > 1024 or len(instance_id.encode("utf-8")) > 64:
        raise ValueError("hello name or instance id is too long (at most 1024 and 64 UTF-8 bytes)")
    if not isinstance(max_frame, int) or not MIN_FRAME <= max_frame < 1 << 31:
        raise ValueError("hello maxFrameSize %r is not an int32 of at least %d" % (max_frame, MIN_FRAME))
    return name, instance_id, max_frame, idle_ms, features


# ------------------------------------------------------------------------------------------------- calling

class Call:
    """One pending request. `result()` waits for the reply; `cancel()` sends a cancel to the peer."""

    def __init__(self, connection, request_id, function):
        self._connection = connection
        self.id = request_id
        self.function = function
        self._done = threading.Event()
        self._value = None
        self._error = None

    def _complete(self, value=None, error=None):
        if not self._done.is_set():
            self._value, self._error = value, error
            self._done.set()

    def done(self):
        return self._done.is_set()

    def result(self, timeout=None):
        """Waits for the reply and returns the value, or raises the call's error.

        On timeout the call is cancelled at the peer and TimeoutError is raised.
        """
        if not self._done.wait(timeout):
            self._connection.abandon(self, TimeoutError(
                "%s did not answer %r within %s s; the request was cancelled there"
                % (self._connection.peer_name, self.function, timeout)))
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self):
        """Cancels the call: the peer's handler sees its cancellation; a late reply is ignored.

        Returns False when the reply had already come.
        """
        if self._done.is_set():
            return False
        self._connection.abandon(self, CallCancelledError("%r was cancelled by this node" % self.function))
        return True


class Stream:
    """The items of one streamed call (`Node.stream`, `Node.request_stream`), in the order the producer yielded them.

    Iterate it (`for item in stream`). Each item waits at most `timeout` seconds (None: no limit); then the stream is
    cancelled on the peer and TimeoutError is raised. The peer runs at most `window` items ahead of this reader: credit
    is granted as items are read (each half window, and before every wait). After the last item the iteration ends, or
    raises the producer's error (a RemoteError subclass) after the items it yielded before, or PeerConnectionError
    when the connection dropped (after the items received). Stopping early (`close()`, leaving a `with` block,
    `cancel()`, or dropping the stream) cancels it on the peer, whose producer's token fires.

    One reader at a time; `cancel()` and `close()` may be called from any thread.
    """

    def __init__(self, receiver, timeout):
        self._receiver = receiver
        self.id = receiver.id
        self.function = receiver.function
        self.window = receiver.window
        self.timeout = timeout
        self._closed = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        return self._receiver.next(self.timeout)

    def done(self):
        """True once the stream ended: its reply came, it was cancelled, or the connection dropped."""
        return self._receiver.ended()

    def cancel(self):
        """Cancels the stream: the peer's producer sees its token fire; items not read are dropped, and the next read
        (also one waiting in another thread) raises CallCancelledError. Returns False when the stream had ended."""
        return self._receiver.give_up(CallCancelledError("stream %r was cancelled by this node" % self.function))

    def close(self):
        """Stops reading: like `cancel()`, but the iteration just ends (as a generator's close). Idempotent."""
        self._closed = True
        self._receiver.give_up(None)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: the connection may be gone)
            pass


class Subscription:
    """This node's subscription to a topic (`Node.subscribe`); close it, or leave its `with` block, to stop."""

    def __init__(self, node, topic, handler):
        self._node, self.topic, self.handler = node, topic, handler

    def close(self):
        """Stops the handler's events; when it was the topic's last, peers are told. Idempotent."""
        self._node._unsubscribe(self)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


class _StreamReceiver:
    """The connection's side of one stream: the items wait here as they arrive, then its end (PROTOCOL.md,
    "Streamed results"). The read loop calls `_item` and `_complete`; one reader calls `next`."""

    def __init__(self, connection, request_id, function, window):
        self._connection = connection
        self.id = request_id
        self.function = function
        self.window = window
        self._changed = threading.Condition()
        self._items = collections.deque()
        self._allowance = window           # items the peer may still send before more credit
        self._batch = max(1, window // 2)  # credit is granted each half window read...
        self._uncredited = 0               # ...and before every wait (see next)
        self._ended = False
        self._error = None

    def _item(self, value):
        with self._changed:
            if self._ended:
                return
            if self._allowance <= 0:
                raise ValueError("peer %r sent more items of %r (stream %d) than the window of %d it was granted"
                                 % (self._connection.peer_name, self.function, self.id, self.window))
            self._allowance -= 1
            self._items.append(value)
            self._changed.notify_all()

    def _complete(self, value=None, error=None):
        """The end: the reply (its nil result or its error), the connection's loss, or this side giving up."""
        with self._changed:
            if not self._ended:
                self._ended, self._error = True, error
                self._changed.notify_all()

    def ended(self):
        with self._changed:
            return self._ended

    def give_up(self, error):
        with self._changed:
            if self._ended:
                return False
            self._items.clear()
        return self._connection.abandon(self, error)

    def next(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            credit, have = 0, False
            with self._changed:
                if self._items:
                    value, have = self._items.popleft(), True
                    self._uncredited += 1
                    if self._uncredited >= self._batch and not self._ended:
                        credit = self._uncredited
                elif self._ended:
                    error, self._error = self._error, None  # raised once; then the iteration just ends
                    if error is not None:
                        raise error
                    raise StopIteration
                elif self._uncredited:
                    # Nothing to read, and the items read are not all credited: grant them before waiting. The peer
                    # may run a smaller window than ours and be waiting for exactly this credit.
                    credit = self._uncredited
                else:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        self._changed.release()
                        try:
                            self._connection.abandon(self, TimeoutError(
                                "%s sent no item of %r within %s s; the stream was cancelled there"
                                % (self._connection.peer_name, self.function, timeout)))
                        finally:
                            self._changed.acquire()
                        continue
                    self._changed.wait(left)
                    continue
                if credit:
                    self._uncredited -= credit
                    self._allowance += credit
            if credit:
                self._connection.credit(self.id, credit)
            if have:
                return value


class _Connection:
    """An outgoing connection to one peer instance: pipelined requests, replies in any order."""

    def __init__(self, node, peer):
        self.peer_name = peer.name
        self._node = node
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending = {}
        self._ids = itertools.count(1)
        self.closed = False
        self._sock = socket.create_connection((peer.host, peer.port), timeout=node.connect_timeout)
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _send_frame(self._sock, self._send_lock, node._hello(), DEFAULT_MAX_FRAME)
            name, instance_id, max_frame, idle_ms, self.features = _check_hello(
                _recv_frame(self._sock, node.max_frame_size))
            if peer.instance_id and instance_id != peer.instance_id:
                raise PeerConnectionError("peer %r at %s:%d is now instance %r, not %r: it restarted"
                                          % (peer.name, peer.host, peer.port, instance_id, peer.instance_id))
            self.instance_id = instance_id
            self._max_send = min(max_frame, node.max_frame_size)
            # A server that takes events sends its subscriptions right after its hello; one that does not, never.
            self._peer_topics = frozenset()
            self._topics_known = threading.Event()
            if EVENTS_FEATURE not in self.features:
                self._topics_known.set()
            # Close before the server's idle reaper can (PROTOCOL.md, Connection lifetime).
            self._idle_limit = min(idle_ms / 1000.0, node.idle_timeout) / 2 if idle_ms > 0 else node.idle_timeout / 2
            self._last_used = time.monotonic()
            self._sock.settimeout(None)
        except BadRequestError as e:
            self._sock.close()
            raise PeerConnectionError("%r refused the connection: %s" % (peer.name, e.remote_message))
        except (OSError, ValueError) as e:
            self._sock.close()
            raise PeerConnectionError("cannot connect to %r at %s:%d: %s" % (peer.name, peer.host, peer.port, e))
        except BaseException:
            self._sock.close()
            raise
        threading.Thread(target=self._read_loop, name="p2plocal-reply-" + peer.name, daemon=True).start()

    def is_stale(self):
        """Closed, or idle long enough that the server may be about to close it."""
        with self._lock:
            return self.closed or not self._pending and time.monotonic() - self._last_used > self._idle_limit

    def call(self, function, kwargs):
        call = self._register(lambda request_id: Call(self, request_id, function))
        self._send_request(call, [REQUEST, call.id, function, kwargs])
        return call

    def stream(self, function, kwargs, window, timeout):
        """Sends a stream request (PROTOCOL.md, "Streamed results") and returns its Stream; sends nothing to a peer
        whose hello does not offer streams."""
        if STREAM_FEATURE not in self.features:
            raise FeatureNotSupportedError(
                "peer %r does not take stream requests: its hello does not offer the %r feature (an older "
                "P2PLocal.Rpc, or another implementation without streams), so %r was not sent; call a function that "
                "returns one result instead" % (self.peer_name, STREAM_FEATURE, function), STREAM_FEATURE)
        receiver = self._register(lambda request_id: _StreamReceiver(self, request_id, function, window))
        self._send_request(receiver, [STREAM_REQUEST, receiver.id, function, kwargs, window])
        return Stream(receiver, timeout)

    def _register(self, make):
        """Takes a free request id and files the Call or stream that `make(id)` returns under it."""
        with self._lock:
            self._last_used = time.monotonic()
            if self.closed:
                raise PeerConnectionError("the connection to %r is closed" % self.peer_name)
            request_id = next(self._ids) & MAX_UINT32
            while request_id in self._pending or request_id == 0:  # never two pending calls on one id
                request_id = next(self._ids) & MAX_UINT32
            entry = make(request_id)
            self._pending[request_id] = entry
        return entry

    def _send_request(self, entry, message):
        try:
            _send_frame(self._sock, self._send_lock, message, self._max_send)
        except FrameTooLargeError as e:
            self._forget(entry.id)
            raise FrameTooLargeError(6, "FrameTooLarge", "the request is too large to send: " + e.remote_message,
                                     entry.function, self.peer_name) from None
        except OSError as e:
            self._forget(entry.id)
            self.close(e)
            raise PeerConnectionError("the connection to %r dropped: %s" % (self.peer_name, e))

    def credit(self, request_id, items):
        """Tells the peer that `items` more items of stream `request_id` were read, so it may send that many more."""
        with self._lock:
            self._last_used = time.monotonic()
            if self.closed:
                return
        try:
            _send_frame(self._sock, self._send_lock, [STREAM_CREDIT, request_id, items], self._max_send)
        except OSError:
            pass  # the read loop sees the loss and ends the stream

    def abandon(self, call, error):
        """Gives up on a call or stream (cancel or timeout): the peer gets a cancel, late items and the reply are
        dropped. Returns False when it had already ended."""
        if self._forget(call.id) is None:
            return False
        call._complete(error=error)
        try:
            _send_frame(self._sock, self._send_lock, [CANCEL, call.id], self._max_send)
        except OSError:
            pass
        return True

    def _forget(self, request_id):
        with self._lock:
            return self._pending.pop(request_id, None)

    def _read_loop(self):
        reason = None
        try:
            while True:
                message = _recv_frame(self._sock, self._node.max_frame_size)
                kind, request_id = message[0], message[1]
                if kind == SUBSCRIPTIONS:
                    self._on_subscriptions(message[1])
                    continue
                if kind == STREAM_ITEM and len(message) >= 3:
                    with self._lock:
                        stream = self._pending.get(request_id)
                    if isinstance(stream, _StreamReceiver):
                        stream._item(message[2])  # ValueError beyond the window: the peer broke the protocol
                    continue  # otherwise an item of a stream given up on: dropped
                if kind not in (RESULT, ERROR) or not isinstance(request_id, int):
                    raise ValueError("a server does not send message kind %r" % (kind,))
                call = self._forget(request_id)
                if call is None:
                    continue  # a reply to a call given up on
                if kind == RESULT and len(message) >= 3:
                    call._complete(value=message[2])
                elif kind == ERROR and len(message) >= 5:
                    code, remote_type, text = message[2], message[3], message[4]
                    call._complete(error=_ERRORS.get(code, RemoteError)(code, remote_type, text, call.function,
                                                                         self.peer_name))
                else:
                    raise ValueError("a reply with %d elements" % len(message))
        except (OSError, ValueError) as e:  # ConnectionError is an OSError
            reason = e
        self.close(reason)

    def _on_subscriptions(self, topics):
        """The server's whole list of topics now (PROTOCOL.md, "Events"); it replaces the one before."""
        if not isinstance(topics, list):
            raise ValueError("a subscriptions message carries an array of topics")
        kept = [t for t in topics if _topic_problem(t) is None][:MAX_TOPICS]
        self._peer_topics = frozenset(kept)
        self._topics_known.set()

    def subscribes(self, topic, timeout):
        """Whether the peer's latest list names `topic`, waiting up to `timeout` for its first list."""
        if not self._topics_known.wait(timeout):
            raise PeerConnectionError("%r sent no subscriptions within %s s of its hello" % (self.peer_name, timeout))
        return not self.closed and topic in self._peer_topics

    def send_event(self, payload):
        with self._lock:
            self._last_used = time.monotonic()
        try:
            _send_payload(self._sock, self._send_lock, payload, self._max_send)
        except OSError as e:
            self.close(e)
            raise PeerConnectionError("the connection to %r dropped: %s" % (self.peer_name, e))

    def close(self, reason=None):
        with self._lock:
            if self.closed:
                return
            self.closed = True
            pending, self._pending = list(self._pending.values()), {}
        self._topics_known.set()  # wakes a publisher waiting for the list
        _shut(self._sock)
        for call in pending:
            call._complete(error=PeerConnectionError(
                "the connection to %r was lost before the reply came%s"
                % (self.peer_name, ": %s" % reason if reason else "")))


# ------------------------------------------------------------------------------------------------- serving

class _ServerConnection:
    """An incoming connection: a hello, then requests run each on its own thread."""

    def __init__(self, node, sock):
        self._node = node
        self._sock = sock
        self._send_lock = threading.Lock()
        self._running = set()
        self._gate = threading.Condition()
        self._caller_features = frozenset()
        self._events = None
        with node._connect_lock:
            node._served.add(self)
        threading.Thread(target=self._serve, name="p2plocal-serve", daemon=True).start()

    def _serve(self):
        node = self._node
        try:
            hello = _recv_frame(self._sock, min(MAX_HELLO_FRAME, node.max_frame_size))
            try:
                _, _, self._max_send, _, self._caller_features = _check_hello(hello)
            except ValueError as e:
                _send_frame(self._sock, self._send_lock, [ERROR, 0, 8, "BadHello", str(e)], DEFAULT_MAX_FRAME)
                return
            _send_frame(self._sock, self._send_lock, node._hello(), self._max_send)
            if EVENTS_FEATURE in self._caller_features:
                node._attach_listener(self)  # sends this node's topics now, and again whenever they change
            while True:
                message, size = _recv_sized_frame(self._sock, node.max_frame_size)
                kind = message[0]
                if kind == REQUEST and (len(message) == 4 or len(message) == 5 and isinstance(message[4], dict)):
                    _, request_id, function, kwargs = message[:4]
                    if not isinstance(request_id, int) or not 0 <= request_id <= 0xFFFFFFFF:
                        raise ValueError("request id %r is not a uint32" % (request_id,))
                    if function is None:
                        function = ""  # a nil name reads as "", which no function has
                    elif not isinstance(function, str):
                        raise ValueError("a function name must be a string")
                    if node._stop.is_set():
                        refusal = [ERROR, request_id, 7, "ShuttingDown", "The node is shutting down."]
                        _send_frame(self._sock, self._send_lock, refusal, self._max_send)
                        continue
                    with self._gate:
                        if request_id in self._running:
                            raise ValueError("request id %d is already running" % request_id)
                        self._running.add(request_id)
                    threading.Thread(target=self._run, args=(request_id, function, kwargs), daemon=True).start()
                elif kind == CANCEL and len(message) == 2:
                    pass  # Python threads cannot be interrupted: the reply comes when the handler returns
                elif kind == EVENT and len(message) >= 3:
                    if size <= MAX_EVENT_SIZE:  # bounds what queued events hold: 1024 of 64 KiB per connection
                        self._on_event(message[1], message[2])
                else:
                    raise ValueError("bad message of kind %r with %d elements" % (kind, len(message)))
        except (OSError, ValueError, P2PError):
            pass  # a bad frame or a lost connection: close it
        finally:
            with node._connect_lock:
                node._served.discard(self)
            node._detach_listener(self)
            self.close()

    def _on_event(self, topic, value):
        """An event from the caller: handed to this node's handlers of its topic in arrival order, on one thread per
        connection; dropped when nobody here subscribes to it (or the queue is full: counted)."""
        if _topic_problem(topic) is not None or not self._node._handlers(topic):
            return
        if self._events is None:
            self._events = _OrderedWorker("p2plocal-events-in", self._node._deliver)
        if not self._events.offer((topic, value)):
            self._node._count("dropped_received")

    def send_topics(self, topics):
        """Announces `topics` (sorted), as many as fit in the caller's frame limit."""
        message = [SUBSCRIPTIONS, topics]
        while len(pack(message)) > self._max_send:
            message[1] = topics = topics[:-1]
        try:
            _send_frame(self._sock, self._send_lock, message, self._max_send)
        except OSError:
            pass  # the serving loop sees the loss

    def drain(self, deadline):
        """Waits until the running handlers have replied, or the deadline (time.monotonic()) passes."""
        with self._gate:
            while self._running and time.monotonic() < deadline:
                self._gate.wait(deadline - time.monotonic())

    def close(self):
        _shut(self._sock)

    def _run(self, request_id, function, kwargs):
        try:
            try:
                if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
                    reply = [ERROR, request_id, 3, "InvalidKwargs", "kwargs must be a map from name to value"]
                elif function == "$methods":
                    reply = [RESULT, request_id, self._node._describe()]
                elif function not in self._node._functions:
                    reply = [ERROR, request_id, 2, "MethodNotFound",
                             "Node %r has no function %r." % (self._node.name, function)]
                else:
                    handler = self._node._functions[function]
                    try:
                        reply = [RESULT, request_id, handler(**kwargs)]
                    except TypeError as e:
                        reply = [ERROR, request_id, 3, "InvalidKwargs", str(e)]
                    except Exception as e:  # the handler failed: the caller gets its type and message
                        reply = [ERROR, request_id, 1, type(e).__qualname__, str(e)]
                try:
                    _send_frame(self._sock, self._send_lock, reply, self._max_send)
                except (FrameTooLargeError, TypeError) as e:
                    message = e.remote_message if isinstance(e, FrameTooLargeError) else str(e)
                    code = 6 if isinstance(e, FrameTooLargeError) else 1
                    _send_frame(self._sock, self._send_lock, [ERROR, request_id, code, type(e).__name__, message],
                                self._max_send)
            finally:
                with self._gate:
                    self._running.discard(request_id)
                    self._gate.notify_all()
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------- the node

class Node:
    """A P2PLocal.Rpc node: discovers peers, calls their functions, and serves `functions` (name -> callable).

    Loopback scope (the default) serves on 127.0.0.1 and beacons to 127.255.255.255. For a LAN, pass
    host="0.0.0.0" and broadcast="<your subnet's broadcast address>": beacons then advertise 0.0.0.0 and
    receivers use the datagram's source address.
    """

    def __init__(self, name, discovery_port=DEFAULT_DISCOVERY_PORT, protocol=DEFAULT_PROTOCOL, timer=3.0,
                 functions=None, host="127.0.0.1", broadcast=LOOPBACK_BROADCAST, request_timeout=30.0,
                 connect_timeout=5.0, max_frame_size=DEFAULT_MAX_FRAME, idle_timeout=120.0,
                 stream_window=DEFAULT_STREAM_WINDOW):
        if not name or "|" in name or "|" in protocol:
            raise ValueError("name and protocol must be non-empty and must not contain '|'")
        self.stream_window = _check_window(stream_window)
        self.name = name
        self.protocol = protocol
        self.discovery_port = discovery_port
        self.interval = float(timer)
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_frame_size = max_frame_size
        self.idle_timeout = idle_timeout
        self.instance_id = secrets.token_hex(8)
        self.started_ms = int(time.time() * 1000)
        self._functions = dict(functions or {})
        self._broadcast = broadcast
        self._loopback = _is_loopback(host)
        self._peers = {}
        self._peers_changed = threading.Condition()
        self._connections = {}
        self._listed = {}
        self._served = set()
        self._connect_lock = threading.Lock()
        self._events_lock = threading.Lock()   # subscriptions, listeners, event links and counts
        self._subscriptions = {}               # topic -> [Subscription]
        self._listeners = set()                # incoming connections whose callers take our topic lists
        self._links = {}                       # peer key -> _OrderedWorker sending it our published events
        self._event_counts = dict.fromkeys(("sent", "received", "dropped_sent", "dropped_received",
                                            "handler_failures"), 0)
        self._stop = threading.Event()
        self._last_answer = 0.0
        self._answer_timer = None

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._listener.bind((host, 0))
            self._listener.listen(64)
            self.port = self._listener.getsockname()[1]
            self._advertised = host
            # Every node on the host binds the discovery port: each gets every broadcast (PROTOCOL.md, Discovery).
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self._udp.bind(("0.0.0.0", discovery_port))
        except BaseException:
            self._listener.close()
            self._udp.close()
            raise
        self._threads = [threading.Thread(target=loop, name="p2plocal-" + loop.__name__, daemon=True)
                         for loop in (self._receive_loop, self._advertise_loop, self._accept_loop)]
        for thread in self._threads:
            thread.start()
        self._beacon("hello")

    # ---- public API

    def register(self, function, handler):
        """Serves `handler(**kwargs)` as `function`. Names must be non-empty and must not start with '$'."""
        if not function or function.startswith("$"):
            raise ValueError("function names must be non-empty and must not start with '$'")
        self._functions[function] = handler

    def peers(self):
        """The live peers, as a list of Peer."""
        with self._peers_changed:
            self._expire_locked(time.monotonic())
            return list(self._peers.values())

    def wait_for(self, name, timeout=10.0):
        """Waits until a peer of that name is seen and returns it; raises PeerNotFoundError on timeout."""
        deadline = time.monotonic() + timeout
        with self._peers_changed:
            while True:
                found = [p for p in self._peers.values() if p.name == name]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise PeerNotFoundError("no peer named %r was seen within %s s" % (name, timeout))
                self._peers_changed.wait(left)

    def call(self, target, function, kwargs=None):
        """Sends a request and returns its Call at once; `Call.result()` waits for the reply."""
        if self._stop.is_set():
            raise P2PError("the node is closed")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError("kwargs must be a dict from parameter name to value")
        return self._connection(target).call(function, kwargs or {})

    def request(self, target, function, /, **kwargs):
        """Calls `function` on peer `target` with kwargs and returns its result (like p2p-local's request)."""
        return self.call(target, function, kwargs).result(self.request_timeout)

    def stream(self, target, function, kwargs=None, window=None, timeout=None):
        """Calls a function that streams its result (PROTOCOL.md, "Streamed results") and returns its Stream at once;
        iterate it for the items. `window` (1 to 2^32-1; default `stream_window`) bounds how far the producer may run
        ahead of the reading; `timeout` bounds each wait for an item (default `request_timeout`; float("inf"): none).

        Raises FeatureNotSupportedError at once, sending nothing, when the peer's hello does not offer streams.
        A function that does not stream is MethodNotFoundError (error 2) on the first read.
        """
        if self._stop.is_set():
            raise P2PError("the node is closed")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError("kwargs must be a dict from parameter name to value")
        window = self.stream_window if window is None else _check_window(window)
        timeout = self.request_timeout if timeout is None else timeout
        return self._connection(target).stream(function, kwargs or {}, window,
                                               None if timeout == float("inf") else timeout)

    def request_stream(self, target, function, /, **kwargs):
        """`stream` with the kwargs as keywords (like `request`), the node's `stream_window` and `request_timeout`:
        `for item in node.request_stream("bob", "count", n=10): ...`."""
        return self.stream(target, function, kwargs)

    def subscribe(self, topic, handler):
        """Calls `handler(value)` with each event that peers publish on `topic` (PROTOCOL.md, "Events") until the
        returned Subscription is closed. Peers are told of the topic at once (and of its end on close).

        The events of one publisher reach the handlers one at a time, in the order published, on a thread of their
        own; a handler that raises is counted (`event_statistics()["handler_failures"]`) and the next event goes on.
        Raises ValueError for a topic that is not 1 to 256 UTF-8 bytes, or a 257th topic. Thread-safe.
        """
        problem = _topic_problem(topic)
        if problem:
            raise ValueError(problem)
        if not callable(handler):
            raise TypeError("handler must be callable with the event's value")
        subscription = Subscription(self, topic, handler)
        with self._events_lock:
            handlers = self._subscriptions.get(topic)
            if handlers is None and len(self._subscriptions) >= MAX_TOPICS:
                raise ValueError("node %r already subscribes to %d topics, as many as peers keep" % (self.name, MAX_TOPICS))
            self._subscriptions.setdefault(topic, []).append(subscription)
            if handlers is None:
                self._announce_locked()
        return subscription

    def publish(self, topic, value):
        """Publishes `value` on `topic` to every live peer that subscribes to it, and returns at once with the number
        of peers it was queued for (peers known not to listen are left out; one whose list has not arrived yet is
        counted, and sent the event only if its list names the topic).

        Each peer has its own bounded queue and sender thread, so a slow or unreachable peer never holds up this
        call or the others; an event that its full queue or a lost connection costs is dropped and counted
        (`event_statistics()`), never resent. A peer's events arrive in the order published.
        Raises ValueError for a bad topic, FrameTooLargeError for an event above 64 KiB, TypeError for a value
        that cannot be sent. Thread-safe.
        """
        problem = _topic_problem(topic)
        if problem:
            raise ValueError(problem)
        if self._stop.is_set():
            raise P2PError("the node is closed")
        payload = pack([EVENT, topic, value])
        if len(payload) + 4 > MAX_EVENT_SIZE:
            raise FrameTooLargeError(remote_message="the event on topic %r is %d bytes, above the %d bytes of an event"
                                     % (topic, len(payload) + 4, MAX_EVENT_SIZE))
        live = {p.key: p for p in self.peers() if not p.legacy}
        queued = 0
        with self._events_lock:
            for key in [k for k in self._links if k not in live]:
                self._links.pop(key).stop()  # the peer left: its queue goes with it
            for key, peer in live.items():
                with self._connect_lock:
                    connection = self._connections.get(key)
                if connection is not None and not connection.closed and connection._topics_known.is_set() \
                        and topic not in connection._peer_topics:
                    continue  # known not to listen: nothing is queued, and it is no drop
                link = self._links.get(key)
                if link is None:
                    link = self._links[key] = _OrderedWorker(
                        "p2plocal-events-" + peer.name, lambda event, peer=peer: self._send_event(peer, *event))
                if link.offer((topic, payload)):
                    queued += 1
                else:
                    self._event_counts["dropped_sent"] += 1
        return queued

    def event_statistics(self):
        """Event counts since the node started: sent, received, dropped_sent (full queue, lost connection, no list
        in time), dropped_received (full queue), handler_failures. A snapshot."""
        with self._events_lock:
            return dict(self._event_counts)

    def functions(self, target):
        """The peer's functions with their signatures: a list of dicts as `$methods` returns them."""
        return self.call(target, "$methods").result(self.request_timeout)

    def describe(self, target, function):
        """The `$methods` entry of `function` on peer `target`, asked once per peer instance (again when the
        function is not listed: the peer may have registered it since). Raises MethodNotFoundError when absent."""
        peer = self._resolve(target)
        with self._connect_lock:
            listed = self._listed.get(peer.key)
        if listed is None or listed[0] != peer.instance_id or function not in listed[1]:
            listed = (peer.instance_id, {f["name"]: f for f in self.functions(target)})
            with self._connect_lock:
                if len(self._listed) >= 256:  # a bound on what strangers' lists may hold here
                    self._listed.clear()
                self._listed[peer.key] = listed
        if function not in listed[1]:
            raise MethodNotFoundError(2, "MethodNotFound", "peer %r lists no function %r" % (target, function),
                                      function, target)
        return listed[1][function]

    def invoke(self, target, function, /, **kwargs):
        """Calls like `request`, but by the peer's description of `function` (see `describe`): kwarg names are
        checked first, dicts are sent as the [MessagePackObject] types the parameters name, and an object result
        comes back as a dict keyed by member name."""
        described = self.describe(target, function)
        result = self.call(target, function, build_kwargs(described, kwargs)).result(self.request_timeout)
        return decode(described.get("returns", "object"), result, described.get("types"))

    def getmethods(self, target):
        """The names of the peer's functions (like p2p-local's getmethods)."""
        return [f["name"] for f in self.functions(target)]

    def close(self, grace=2.0):
        """Sends a goodbye, lets running handlers reply for up to `grace` seconds, closes every connection and
        socket, and stops the threads. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        # Stop accepting before the goodbye: peers check a goodbye by connecting, and an answer would refute it.
        _shut(self._listener)
        self._beacon("bye")
        _shut(self._udp)
        with self._peers_changed:
            self._peers_changed.notify_all()
        with self._events_lock:
            links, self._links = list(self._links.values()), {}
        for link in links:
            link.stop()
        if self._answer_timer is not None:
            self._answer_timer.cancel()
        with self._connect_lock:
            served = list(self._served)
        deadline = time.monotonic() + grace
        for connection in served:
            connection.drain(deadline)
        with self._connect_lock:
            connections, self._connections = list(self._connections.values()), {}
            connections += list(self._served)
        for connection in connections:
            connection.close()
        for thread in self._threads:
            thread.join(timeout=5)

    shutdown = close

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    # ---- discovery

    def _beacon(self, kind):
        data = format_beacon(self.protocol, self.name, self._advertised, self.port, self.instance_id, kind,
                             int(self.interval * 1000), self.started_ms)
        try:
            self._udp.sendto(data, (self._broadcast, self.discovery_port))
        except OSError:
            pass

    def _advertise_loop(self):
        while not self._stop.wait(self.interval):
            self._beacon("alive")
            with self._peers_changed:
                self._expire_locked(time.monotonic())

    def _receive_loop(self):
        while not self._stop.is_set():
            try:
                datagram, address = self._udp.recvfrom(MAX_BEACON + 1)
            except OSError:
                return
            if address is None:  # the socket was shut down
                return
            source = address[0]
            if self._loopback and not _is_loopback(source):
                continue
            beacon = parse_beacon(datagram)
            if beacon is None or beacon["protocol"] != self.protocol or beacon.get("instance_id") == self.instance_id:
                continue
            if (_is_loopback(beacon["host"]) or beacon["host"] == "0.0.0.0") and not _is_loopback(source):
                beacon["host"] = source  # the sender did not know its address: use the datagram's source
            self._observe(beacon)
            if beacon["kind"] == "hello":
                self._answer_hello()

    def _answer_hello(self):
        # Broadcast, never unicast to the source: with SO_REUSEPORT a unicast datagram reaches only one of the
        # sockets bound to the port on that host. Hellos in a burst share one answer per ANSWER_SPACING.
        with self._peers_changed:
            wait = self._last_answer + ANSWER_SPACING - time.monotonic()
            if wait <= 0:
                self._last_answer = time.monotonic()
            elif self._answer_timer is not None and self._answer_timer.is_alive():
                return  # an answer is already on its way and covers this hello too
            else:
                self._answer_timer = threading.Timer(wait, self._answer_now)
                self._answer_timer.daemon = True
                self._answer_timer.start()
                return
        if not self._stop.is_set():
            self._beacon("alive")

    def _answer_now(self):
        with self._peers_changed:
            self._last_answer = time.monotonic()
        if not self._stop.is_set():
            self._beacon("alive")

    def _observe(self, beacon):
        now = time.monotonic()
        legacy = beacon["kind"] == "legacy"
        peer = Peer(beacon["name"], beacon["host"], beacon["port"], "" if legacy else beacon["instance_id"],
                    self.interval if legacy else beacon["interval_ms"] / 1000.0,
                    0 if legacy else beacon["started_ms"], now, legacy)
        with self._peers_changed:
            if beacon["kind"] == "bye":
                self._peers.pop(peer.key, None)
            else:
                self._peers[peer.key] = peer
            self._peers_changed.notify_all()
        if beacon["kind"] == "bye":
            self._drop_connection(peer.key)

    def _expire_locked(self, now):
        # A peer expires 3.5 of its own intervals after its last beacon; a legacy one after 3.5 of ours.
        for key, peer in list(self._peers.items()):
            if now - peer.last_seen > 3.5 * peer.interval:
                del self._peers[key]

    def _resolve(self, name):
        with self._peers_changed:
            self._expire_locked(time.monotonic())
            found = [p for p in self._peers.values() if p.name == name]
            own = [p for p in self._peers.values() if p.name == self.name]
        for claim in own:
            if (claim.started_ms, claim.instance_id) < (self.started_ms, self.instance_id):
                raise NameConflictError("node %r shares its name with an older live node at %s:%d; it sends no "
                                        "requests until the name is its own" % (self.name, claim.host, claim.port))
        if len(found) > 1:
            # A restarted node beacons before its old instance expires: keep the instances that still answer.
            found = [p for p in found if self._answers(p)]
        if not found:
            raise PeerNotFoundError("no peer named %r is known to node %r" % (name, self.name))
        if len(found) > 1:
            raise NameConflictError("two live nodes claim the name %r: %s" % (name, found))
        if found[0].legacy:
            raise P2PError("peer %r is a Python p2p-local node (XML-RPC); it cannot take P2PLocal.Rpc requests"
                           % name)
        return found[0]

    def _answers(self, peer):
        try:
            self._connection_to(peer)
            return True
        except PeerConnectionError:
            with self._peers_changed:
                self._peers.pop(peer.key, None)
            return False

    # ---- connections

    def _connection(self, target):
        return self._connection_to(self._resolve(target))

    def _connection_to(self, peer):
        with self._connect_lock:
            connection = self._connections.get(peer.key)
            if connection is not None and not connection.is_stale():
                return connection
            if connection is not None:
                connection.close()
            connection = _Connection(self, peer)
            self._connections[peer.key] = connection
            return connection

    def _drop_connection(self, key):
        with self._connect_lock:
            connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def _hello(self):
        # idleTimeoutMs 0: this node does not close quiet incoming connections. Features: it skips request extras and
        # takes events (it does not serve streams, so it does not list "stream").
        return [HELLO, PROTOCOL_VERSION, self.name, self.instance_id, self.max_frame_size, 0, ["extras", EVENTS_FEATURE]]

    # ---- events

    def _count(self, what):
        with self._events_lock:
            self._event_counts[what] += 1

    def _send_event(self, peer, topic, payload):
        """A link's thread: sends one event if the peer's latest list names its topic."""
        try:
            connection = self._connection_to(peer)
            if connection.subscribes(topic, self.connect_timeout):
                connection.send_event(payload)
                self._count("sent")
        except (P2PError, OSError):
            self._count("dropped_sent")

    def _handlers(self, topic):
        with self._events_lock:
            return list(self._subscriptions.get(topic, ()))

    def _deliver(self, event):
        topic, value = event
        self._count("received")
        for subscription in self._handlers(topic):  # those subscribed now: a closed one gets nothing more
            try:
                subscription.handler(value)
            except Exception:  # noqa: BLE001 (a handler's failure must not stop the next event)
                self._count("handler_failures")

    def _unsubscribe(self, subscription):
        with self._events_lock:
            handlers = self._subscriptions.get(subscription.topic, [])
            if subscription not in handlers:
                return
            handlers.remove(subscription)
            if not handlers:
                del self._subscriptions[subscription.topic]
                self._announce_locked()

    def _announce_locked(self):
        topics = sorted(self._subscriptions)
        for listener in list(self._listeners):
            listener.send_topics(topics)

    def _attach_listener(self, connection):
        with self._events_lock:
            self._listeners.add(connection)
            connection.send_topics(sorted(self._subscriptions))

    def _detach_listener(self, connection):
        with self._events_lock:
            self._listeners.discard(connection)

    def _describe(self):
        return [{"name": name, "params": [], "returns": "object", "fingerprint": None}
                for name in sorted(self._functions)]

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _ServerConnection(self, sock)

