#!/usr/bin/env python3
"""Drives a VMM through QMP with QEMU's own client library (qemu.qmp) and prints a normalized
transcript, one JSON object per line, so that the same script run against qemu-system-x86_64
and against vmm can be compared line by line.

    qmp_conformance.py BINARY KERNEL IMAGE WORKDIR [qmp|mon]

The VMM is started paused (-S) with a QMP unix socket, the qmpguest kernel, a virtio-rng and a
virtio-blk device. The script checks the protocol (greeting, negotiation, errors with their
classes, ids echoed), runs queries, stops and continues the guest several times while it ticks
on COM1 (the ticks must stay contiguous and not advance while stopped), resets it, presses the
ACPI power button (the guest's SCI handler sees PWRBTN_STS and powers off: SHUTDOWN
guest-shutdown), and reconnects a second client in between. The socket is `-qmp
unix:SOCK,server=on,wait=off` (form `qmp`, the default) or a socket chardev with a QMP monitor
on it, `-chardev socket,id=qmp0,path=SOCK,server=on,wait=off -mon chardev=qmp0,mode=control`
(form `mon`); the transcript must not depend on the form. Values that legitimately differ
(versions, thread ids, timestamps, paths, BAR addresses) are masked.
"""
import asyncio
import json
import os
import re
import subprocess
import sys
import time

from qemu.qmp import QMPClient, ExecuteError


def out(kind, **fields):
    print(json.dumps({"kind": kind, **fields}, sort_keys=True), flush=True)


def ticks(serial):
    try:
        with open(serial) as f:
            return [int(m.group(1)) for m in re.finditer(r"^tick (\d+)$", f.read(), re.M)]
    except FileNotFoundError:
        return []


async def wait_for(pred, seconds=30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.02)
    return pred()


def mask_pci(devices):
    # The functions a guest sees: where, what (ids, class) and which BAR kinds; addresses are
    # the firmware's business (QEMU shows -1 before SeaBIOS runs) and legacy virtio I/O BARs
    # exist only on QEMU's transitional devices.
    return sorted((d["slot"], d["function"], d["id"]["vendor"], d["id"]["device"], d["class_info"]["class"],
                   d["irq_pin"]) for d in devices)


async def main(binary, kernel, image, workdir, form="qmp"):
    sock = os.path.join(workdir, "qmp.sock")
    serial = os.path.join(workdir, "serial.txt")
    for p in (sock, serial):
        if os.path.exists(p):
            os.unlink(p)
    argv = [binary, "-machine", "accel=kvm", "-nodefaults", "-display", "none", "-S", "-name", "guest0",
            "-serial", "file:" + serial, "-smp", "2", "-device", "virtio-rng-pci",
            "-drive", "file=%s,if=none,id=disk0,format=raw" % image, "-device", "virtio-blk-pci,drive=disk0",
            "-kernel", kernel]
    if form == "mon":
        argv += ["-chardev", "socket,id=qmp0,path=%s,server=on,wait=off" % sock, "-mon", "chardev=qmp0,mode=control"]
    else:
        argv += ["-qmp", "unix:%s,server=on,wait=off" % sock]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "stderr.txt"), "w"))
    try:
        if not await wait_for(lambda: os.path.exists(sock), 20):
            out("error", what="no QMP socket")
            return 1
        qmp = QMPClient("conformance")
        events = []
        await qmp.connect(sock)
        greeting = qmp.greeting._raw
        out("greeting", capabilities=greeting["QMP"]["capabilities"],
            version_keys=sorted(greeting["QMP"]["version"]["qemu"].keys()))

        async def listen():
            async for event in qmp.events:
                events.append(event)
        listener = asyncio.get_event_loop().create_task(listen())

        async def call(cmd, args=None, keep=True):
            try:
                r = await qmp.execute(cmd, args)
                if keep:
                    out("return", cmd=cmd, value=r)
                return r
            except ExecuteError as e:
                out("error", cmd=cmd, **{"class": e.error_class, "desc": str(e)})
                return None

        def seen(name, data=None):
            return any(e["event"] == name and (data is None or e.get("data") == data) for e in events)

        st = await call("query-status")
        await call("query-name")
        await call("query-kvm")
        cpus = await call("query-cpus-fast", keep=False)
        out("cpus", props=[c["props"] for c in cpus], indexes=[c["cpu-index"] for c in cpus],
            threads=all(isinstance(c["thread-id"], int) and c["thread-id"] > 0 for c in cpus),
            target=[c["target"] for c in cpus])
        pci = await call("query-pci", keep=False)
        out("pci", functions=mask_pci(pci[0]["devices"]))
        blocks = await call("query-block", keep=False)
        out("block", devices=[(b["device"], b["type"], b["removable"], b["inserted"]["drv"], b["inserted"]["ro"],
                               b["inserted"]["image"]["virtual-size"]) for b in blocks])
        names = [c["name"] for c in await call("query-commands", keep=False)]
        out("commands", present=sorted(set(names) & {"qmp_capabilities", "query-version", "query-commands",
            "query-status", "query-name", "query-kvm", "query-cpus-fast", "query-pci", "query-block", "stop",
            "cont", "system_reset", "system_powerdown", "quit", "human-monitor-command"}))
        # Errors, in QEMU's classes and words.
        await call("no-such-command")
        await call("query-status", {"bogus": 1})
        await call("human-monitor-command", {})
        await call("human-monitor-command", {"command-line": 3})
        await call("human-monitor-command", {"command-line": "info status"})
        raw = await qmp.execute_msg(qmp.make_execute_msg("query-status"))
        out("id-echo", ok="status" in raw)

        # Run; stop and continue while it ticks; nothing lost, nothing repeated, frozen while stopped.
        await call("cont")
        await wait_for(lambda: seen("RESUME"))
        out("events", names=[e["event"] for e in events])
        await call("query-status")
        frozen = True
        for round in range(5):
            target = len(ticks(serial)) + 3
            await wait_for(lambda: len(ticks(serial)) >= target)
            await call("stop", keep=False)
            n = len(ticks(serial))
            await asyncio.sleep(0.3)
            frozen &= len(ticks(serial)) == n
            status = (await qmp.execute("query-status"))["status"]
            frozen &= status == "paused"
            await call("cont", keep=False)
        t = ticks(serial)
        out("stop-cont", frozen_while_stopped=frozen, contiguous=t == list(range(len(t))), at_least=len(t) >= 15,
            stops=sum(e["event"] == "STOP" for e in events), resumes=sum(e["event"] == "RESUME" for e in events))

        # A second client can connect while the first is gone.
        await qmp.disconnect()
        listener.cancel()
        qmp = QMPClient("second")
        await qmp.connect(sock)
        events = []
        listener = asyncio.get_event_loop().create_task(listen())
        await call("query-status")

        # Reset: the kernel starts again from tick 0.
        await call("system_reset", keep=False)
        await wait_for(lambda: seen("RESET"))
        out("reset", event=[e.get("data") for e in events if e["event"] == "RESET"])
        await wait_for(lambda: "tick 2\n" in open(serial).read().split("qmpguest: SCI", 2)[-1] if open(serial).read().count("qmpguest: SCI") >= 2 else False)
        out("rebooted", banners=open(serial).read().count("qmpguest: SCI"))

        # The power button: POWERDOWN, the guest's SCI, ACPI S5, SHUTDOWN guest-shutdown.
        await call("system_powerdown", keep=False)
        ok = await wait_for(lambda: seen("SHUTDOWN"), 20)
        out("powerdown", events=[(e["event"], e.get("data")) for e in events if e["event"] in ("POWERDOWN", "SHUTDOWN")],
            guest_saw_button="power button (SCI" in open(serial).read(), shutdown=ok)
        listener.cancel()
        try:
            await qmp.disconnect()
        except Exception:
            pass
        proc.wait(timeout=20)
        out("exit", status=proc.returncode)
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:6])))
