"""A stand-in for the Python p2p-local node (issue 13), standard library only, for the mixed-network tests.

It behaves as the issue describes the real one:
- beacon: UTF-8 "protocol|name|ip:port", nothing else, every `timer` seconds to the broadcast address on the
  discovery port (here 127.255.255.255: tests stay on loopback);
- listener: keeps every datagram whose text *starts with* its protocol, maps field 1 to field 2, and rebuilds its
  whole table every timer + 2 seconds;
- server: SimpleXMLRPCServer on localhost with register_introspection_functions, each function taking one kwargs dict;
- client: ServerProxy('http://ip:port/', use_builtin_types=True).function(kwargs), connecting to localhost when the
  target's ip is its own advertised ip; getmethods is system.listMethods().

The test drives it over stdin/stdout, one command per line, one answer per line:
  wait NAME            -> FOUND ip:port  (or MISSING after 30 s)
  call NAME FN KWARGS  -> OK repr(result) | FAULT code faultString   (KWARGS: a Python dict expression; `datetime` is in scope)
  methods NAME         -> OK repr(list)
  quit
"""
import datetime
import socket
import sys
import threading
import time
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCServer


def main():
    protocol, name, ip, discovery_port, timer = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    table, lock, stop, announced = {}, threading.Lock(), threading.Event(), threading.Event()

    server = SimpleXMLRPCServer(("localhost", 0), logRequests=False)
    server.register_introspection_functions()
    for function in (echo, add, fail, types, big, none):
        server.register_function(function, function.__name__)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def advertise():
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        beacon = ("%s|%s|%s:%d" % (protocol, name, ip, port)).encode("utf-8")
        while not stop.is_set():
            sender.sendto(beacon, ("127.255.255.255", discovery_port))
            announced.set()
            stop.wait(timer)
        sender.close()

    def listen():
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        receiver.bind(("", discovery_port))
        receiver.settimeout(0.2)
        rebuilt = time.monotonic()
        fresh = {}
        while not stop.is_set():
            try:
                data, _ = receiver.recvfrom(2048)
                text = data.decode("utf-8")
                if text.startswith(protocol):
                    fields = text.split("|")
                    fresh[fields[1]] = fields[2]
                    with lock:
                        table[fields[1]] = fields[2]
            except (socket.timeout, UnicodeDecodeError, IndexError):
                pass
            if time.monotonic() - rebuilt > timer + 2:
                with lock:
                    table.clear()
                    table.update(fresh)
                fresh, rebuilt = {}, time.monotonic()
        receiver.close()

    def proxy(target):
        with lock:
            address = table[target]
        target_ip, target_port = address.split(":")
        host = "localhost" if target_ip == ip else target_ip
        return xmlrpc.client.ServerProxy("http://%s:%s/" % (host, target_port), use_builtin_types=True)

    threading.Thread(target=advertise, daemon=True).start()
    threading.Thread(target=listen, daemon=True).start()
    announced.wait(10)  # READY comes after the first beacon, so a test can order its own datagrams after it
    print("READY %d" % port, flush=True)

    for line in sys.stdin:
        words = line.strip().split(" ", 3)
        try:
            if words[0] == "quit":
                break
            if words[0] == "wait":
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    with lock:
                        found = table.get(words[1])
                    if found:
                        break
                    time.sleep(0.05)
                print("FOUND %s" % found if found else "MISSING", flush=True)
            elif words[0] == "call":
                kwargs = eval(words[3], {"datetime": datetime}) if len(words) > 3 else {}  # a test tool: the test writes the line
                print("OK %r" % (getattr(proxy(words[1]), words[2])(kwargs),), flush=True)
            elif words[0] == "methods":
                print("OK %r" % (proxy(words[1]).system.listMethods(),), flush=True)
            else:
                print("UNKNOWN %s" % words[0], flush=True)
        except xmlrpc.client.Fault as fault:
            print("FAULT %d %s" % (fault.faultCode, fault.faultString.replace("\n", " ")), flush=True)
        except Exception as error:  # the test reads it as a line
            print("ERROR %s: %s" % (type(error).__name__, str(error).replace("\n", " ")), flush=True)

    stop.set()
    server.shutdown()
    server.server_close()


def echo(kwargs):
    return kwargs["value"]


def add(kwargs):
    return kwargs["a"] + kwargs["b"]


def fail(kwargs):
    raise ValueError("boom: %s" % kwargs.get("why", "no reason"))


def types(kwargs):
    return {
        "int": 7, "double": 2.5, "bool": True, "string": "h\u00e9llo <&>", "bytes": b"\x00\x01\xff",
        "time": datetime.datetime(2026, 11, 27, 9, 30, 15), "list": [1, "two", 3.0], "map": {"nested": [{"k": False}]},
        "got": sorted("%s:%s" % (k, type(v).__name__) for k, v in kwargs.items()),
    }


def big(kwargs):
    return 2 ** 40


def none(kwargs):
    return None


if __name__ == "__main__":
    main()
