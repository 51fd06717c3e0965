"""A Python script calling a C# P2PLocal.Rpc node, in loopback scope (see README.md beside it).

    python3 samples/python/example.py <target-name> <discovery-port> [--wait-for-call]

The target serves greet, slow, the typed Calculator (Multiply, SumAsync) and Geometry (Measure, with object kwargs), as
`dotnet run --project samples/P2PLocal.Rpc.Sample serve bob <discovery-port>` does. With --wait-for-call the script
stays until the target calls its Python function `shout` once (the test suite uses this).
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2plocal  # noqa: E402


def main():
    target, port = sys.argv[1], int(sys.argv[2])
    called = threading.Event()

    def shout(text):
        called.set()
        return text.upper() + "!"

    started = time.monotonic()
    with p2plocal.Node("py-%d" % os.getpid(), discovery_port=port, functions={"shout": shout}) as node:
        print("SERVING %s %s" % (node.name, node.instance_id), flush=True)
        peer = node.wait_for(target)
        print("found %s at %s:%d in %.1f ms" % (peer.name, peer.host, peer.port, (time.monotonic() - started) * 1000))

        for function in node.functions(target):
            params = ", ".join("%s: %s%s" % (p["name"], p["type"], (" = %r" % p["default"] if "default" in p else " = ...")
                                              if p["optional"] else "")
                               for p in function["params"])
            print("function %s(%s) -> %s" % (function["name"], params, function["returns"]))

        # Each contract's fingerprint, computed here from the signatures the node sent, must be the one it reports.
        contracts = {}
        for function in node.functions(target):
            if function.get("contract"):
                contracts.setdefault(function["contract"], []).append(function)
        for contract, functions in sorted(contracts.items()):
            computed, reported = p2plocal.fingerprint(functions), functions[0]["fingerprint"]
            print("contract %s: fingerprint %s %s" % (contract, computed, "matches" if computed == reported else
                                                         "differs from the reported " + reported))

        print("dynamic: greet ->", node.request(target, "greet", name="Ann"))
        print("typed: Multiply ->", node.request(target, "Multiply", a=6, b=7))
        print("typed: SumAsync ->", node.request(target, "SumAsync", values=[1, 2, 3, 4]))

        # Objects: $methods describes the [MessagePackObject] types Measure takes and returns, so invoke() builds
        # the segment from dicts of members and hands the result back as a dict.
        for name, described in sorted(node.describe(target, "Measure")["types"].items()):
            print("object %s as %s: %s" % (name, described["layout"], ", ".join(
                "%r %s: %s%s" % (m["key"], m["name"], m["type"], " (required)" if m["required"] else "")
                for m in described["members"])))
        segment = {"From": {"X": 0, "Y": 0}, "To": {"X": 3, "Y": 4}, "Label": "diagonal"}
        print("objects: Measure ->", node.invoke(target, "Measure", segment=segment))
        try:
            node.request(target, "Measure", segment=[[0, 0]])  # by hand, one point short
        except p2plocal.InvalidKwargsError as e:
            print("error %d: %s" % (e.code, e.remote_message))

        # Pipelined: a hundred calls in flight on one connection, replies in any order.
        calls = [node.call(target, "Multiply", {"a": i, "b": 2}) for i in range(100)]
        print("pipelined: 100 calls, sum", sum(call.result(30) for call in calls))

        try:
            node.request(target, "fly")
        except p2plocal.MethodNotFoundError as e:
            print("error %d: %s" % (e.code, e.remote_message))
        try:
            node.request(target, "Multiply", a="six", b=7)
        except p2plocal.InvalidKwargsError as e:
            print("error %d: %s" % (e.code, e.remote_message))

        slow = node.call(target, "slow", {"ms": 60000})
        slow.cancel()  # the handler's CancellationToken fires on the C# side
        try:
            slow.result()
        except p2plocal.CallCancelledError:
            print("cancelled: slow")

        if "--wait-for-call" in sys.argv[3:]:
            print("WAITING", flush=True)
            if not called.wait(30):
                print("nobody called shout", file=sys.stderr)
                return 1
            print("called: shout")
    print("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
