"""End-to-end tests of the Python client against the real hvmmd of this build.

The same lifecycle and memory calls as the C++ end-to-end tests (create, start, get, list,
GetMemoryStats, SetBalloonTarget with wait, DumpStage2 of every page, TlbShootdown of both
stages, WatchNotifier of a balloon change, stop, delete) on a VM of the bundled guest kernel,
and bad requests (status code, and the field named in the message). Tests that run VMs skip
without /dev/kvm (the nested-KVM stage runs them); the bad requests that need no running VM
run anywhere hvmmd is built. Output and flags are GoogleTest's (gtest_runner.py).

Run through the wrapper the build writes (BUILD/tests/e2e/python/python_client_e2e_test), which
puts the generated stubs and Debian's grpc and protobuf modules on the path (e2e_paths.py).
"""

import os
import sys
import time
import unittest

import e2e_paths

for _path in e2e_paths.PYTHON_PATH:
    if _path not in sys.path:
        sys.path.insert(1, _path)

import grpc  # noqa: E402

from hvmm.v1 import guest_pb2, notifier_pb2, stage2_pb2, tlb_pb2, vm_pb2  # noqa: E402
from hvmm_client import HvmmClient, HvmmError  # noqa: E402
from hvmmd_process import HvmmdProcess  # noqa: E402
import gtest_runner  # noqa: E402

MiB = 1 << 20
PAGE = 4096
BOOT_TIMEOUT = 180.0  # a guest's boot and first answer (nested KVM is 10-100x slower)
Code = grpc.StatusCode


def _kvm_unavailable_reason():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return ""
    except OSError as error:
        return "/dev/kvm cannot be opened: %s (the nested-KVM stage runs these tests)" % (
            error.strerror)


def _missing_binaries_reason(names):
    for name in names:
        path = e2e_paths.BINARIES.get(name, "")
        if not path:
            return "%s is not part of this build" % name
        if not os.access(path, os.X_OK):
            return "%s cannot be run: %s" % (name, path)
    return ""


class DaemonCase(unittest.TestCase):
    """Each test gets its own hvmmd; a failed test prints the end of its log."""

    needs_kvm = True

    def setUp(self):
        reason = _missing_binaries_reason(["hvmmd", "hvmm_vm"])
        if not reason and self.needs_kvm:
            reason = _kvm_unavailable_reason()
        if reason:
            self.skipTest(reason)
        self.daemon = HvmmdProcess(e2e_paths.BINARIES)
        self.client = self.daemon.client
        self.addCleanup(self._stop_daemon)

    def _stop_daemon(self):
        outcome = getattr(self, "_outcome", None)
        failed = outcome is not None and not outcome.success
        if failed:
            print("--- the end of hvmmd's log:\n%s---" % "\n".join(
                self.daemon.log().splitlines()[-60:]))
        self.daemon.stop()

    def assert_status(self, call, code, *words):
        """`call()` fails with `code`, and its message names one of `words` (any case)."""
        with self.assertRaises(HvmmError) as caught:
            call()
        error = caught.exception
        self.assertEqual(error.code, code, str(error))
        message = error.message.lower()
        self.assertTrue(any(word.lower() in message for word in words),
                        "%s does not name %s" % (error, " or ".join(words)))

    def start_guest_vm(self, name, memory_bytes, vcpus=1):
        """Create and start `name`, wait until its guest answers: the VM as Get reports it."""
        self.client.create_vm(name, HvmmClient.spec(memory_bytes=memory_bytes, vcpus=vcpus))
        vm = self.client.start_vm(name, wait=True, timeout=BOOT_TIMEOUT)
        self.assertEqual(vm.state, vm_pb2.VM_STATE_RUNNING, vm.exit.reason)
        self.client.start_workload(name, PAGE, timeout=BOOT_TIMEOUT)
        return self.client.get_vm(name)

    def wait_for_watch_subscription(self, name, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owners = [s.owner for s in self.client.list_subscriptions(name).subscriptions]
            if "watch" in owners:
                return
            time.sleep(0.05)
        self.fail("no notifier subscription of owner 'watch' appeared")


def _kvm_pages(stats):
    return stats.pages_4k + 512 * stats.pages_2m + 512 * 512 * stats.pages_1g


def _bytes_with_backing(mappings, backing):
    return sum(m.range.size for m in mappings if m.state.backing == backing)


class PythonClient(DaemonCase):
    def test_lifecycle_and_memory_calls(self):
        """One VM through its whole life, every memory call asserted on its answer."""
        c = self.client
        self.assertEqual(c.daemon_info().pid, self.daemon.process.pid)
        created = c.create_vm("py-vm", HvmmClient.spec(memory_bytes=256 * MiB))
        self.assertEqual(created.state, vm_pb2.VM_STATE_CREATED)
        self.assertEqual(created.vmid, 0)
        started = c.start_vm("py-vm", wait=True, timeout=BOOT_TIMEOUT)
        self.assertEqual(started.state, vm_pb2.VM_STATE_RUNNING, started.exit.reason)
        self.assertNotEqual(started.vmid, 0)
        self.assertGreater(started.pid, 0)
        c.start_workload("py-vm", PAGE, timeout=BOOT_TIMEOUT)
        got = c.get_vm("py-vm")
        self.assertEqual((got.state, got.vmid, got.pid),
                         (vm_pb2.VM_STATE_RUNNING, started.vmid, started.pid))
        self.assertEqual([vm.name for vm in c.list_vms()], ["py-vm"])

        stats = c.memory_stats("py-vm")
        self.assertEqual(stats.memory_bytes, 256 * MiB)
        self.assertEqual(stats.vmid, started.vmid)
        self.assertTrue(stats.balloon.present)
        held = c.start_workload("py-vm", 96 * MiB, seed=9, hold=True, timeout=150)
        self.assertEqual(held.pages, 96 * MiB // PAGE)
        touched = c.memory_stats("py-vm")
        self.assertGreaterEqual(touched.host.rss_bytes, 96 * MiB)
        c.exit_workload("py-vm", held.workload)

        watch = c.watch_notifier("py-vm")
        self.addCleanup(watch.close)
        self.wait_for_watch_subscription("py-vm")
        balloon = c.set_balloon_target("py-vm", 96 * MiB, wait_ms=150000)
        self.assertEqual(balloon.target_bytes, 96 * MiB)
        self.assertGreaterEqual(balloon.actual_bytes, 96 * MiB)
        after = c.memory_stats("py-vm")
        self.assertGreaterEqual(after.pages.ballooned, 96 * MiB // PAGE)
        self.assertLessEqual(after.host.rss_bytes + 48 * MiB, touched.host.rss_bytes,
                             "RSS %d with the workload, %d after the balloon"
                             % (touched.host.rss_bytes, after.host.rss_bytes))
        start = watch.wait_for(lambda e: e.reason == notifier_pb2.CHANGE_REASON_BALLOON
                               and e.phase == notifier_pb2.NOTIFIER_PHASE_START, 60)
        self.assertIsNotNone(start, "no BALLOON invalidation in %d events"
                             % len(watch.snapshot()))
        end = watch.wait_for(lambda e: e.sequence == start.sequence
                             and e.phase == notifier_pb2.NOTIFIER_PHASE_END, 60)
        self.assertIsNotNone(end)
        self.assertEqual((end.range.start, end.range.size), (start.range.start, start.range.size))

        mappings, pages = c.dump_stage2_all("py-vm", page_size=8)
        self.assertGreater(pages, 1)
        self.assertEqual(sum(m.range.size for m in mappings), 256 * MiB)
        ballooned = _bytes_with_backing(mappings, stage2_pb2.BACKING_BALLOONED)
        self.assertEqual(ballooned, after.pages.ballooned * PAGE)
        starts = [m.range.start for m in mappings]
        self.assertEqual(starts, sorted(starts))

        stage1 = c.shootdown_stage1("py-vm", timeout=120)
        self.assertEqual(stage1.stage, tlb_pb2.TLB_STAGE_1)
        self.assertGreater(stage1.latency_ns, 0)
        self.assertGreaterEqual(stage1.stage1.cpus, 1)
        stage2 = c.shootdown_stage2("py-vm", timeout=120)
        self.assertEqual(stage2.stage, tlb_pb2.TLB_STAGE_2)
        self.assertGreater(stage2.latency_ns, 0)
        self.assertGreater(stage2.stage2.pages, 0)
        self.assertTrue(stage2.stage2.mechanism)
        self.assertLess(_kvm_pages(stage2.stage2.kvm_after), _kvm_pages(stage2.stage2.kvm_before))
        print("python client: stage-1 shootdown %d ns, stage-2 %d ns (%s), KVM pages %d -> %d"
              " (nested KVM: emulated)" % (stage1.latency_ns, stage2.latency_ns,
                                           stage2.stage2.mechanism,
                                           _kvm_pages(stage2.stage2.kvm_before),
                                           _kvm_pages(stage2.stage2.kvm_after)))

        c.stop_vm("py-vm", grace_ms=60000, timeout=120)
        stopped = c.wait_for_vm("py-vm", lambda vm: vm.state == vm_pb2.VM_STATE_STOPPED, 120)
        self.assertTrue(stopped.exit.HasField("status"), stopped.exit.reason)
        self.assertEqual(stopped.vmid, 0)
        c.delete_vm("py-vm")
        self.assert_status(lambda: c.get_vm("py-vm"), Code.NOT_FOUND, "py-vm", "name")
        self.assertEqual(c.list_vms(), [])

    def test_bad_requests_against_a_running_vm(self):
        """What only the VM process can judge, and wrong transitions of a running VM."""
        c = self.client
        vm = self.start_guest_vm("target", 128 * MiB)
        huge = (1 << 64) - 1
        table = [
            (lambda: c.dump_stage2("target", start=1, size=PAGE), Code.INVALID_ARGUMENT,
             ["range"]),
            (lambda: c.dump_stage2("target", start=huge - PAGE + 1, size=2 * PAGE),
             Code.INVALID_ARGUMENT, ["range"]),
            (lambda: c.dump_stage2("target", page_size=10001), Code.INVALID_ARGUMENT,
             ["page_size"]),
            (lambda: c.shootdown_stage2("target", start=PAGE, size=100), Code.INVALID_ARGUMENT,
             ["range"]),
            (lambda: c.set_balloon_target("target", 256 * MiB), Code.INVALID_ARGUMENT,
             ["target_bytes"]),
            (lambda: c.set_balloon_target("target", huge), Code.INVALID_ARGUMENT,
             ["target_bytes"]),
            (lambda: c.start_workload("target", 0), Code.INVALID_ARGUMENT, ["bytes"]),
            (lambda: c.start_workload("target", PAGE + 1), Code.INVALID_ARGUMENT, ["bytes"]),
            (lambda: c.start_vm("target", wait=False), Code.FAILED_PRECONDITION, ["running"]),
            (lambda: c.delete_vm("target"), Code.FAILED_PRECONDITION, ["running"]),
        ]
        for call, code, words in table:
            self.assert_status(call, code, *words)
            c.memory_stats("target")  # the VM process still serves
        self.assertEqual(c.start_workload("target", 2 * MiB).pages, 2 * MiB // PAGE)
        self.assertEqual(c.get_vm("target").pid, vm.pid)


class PythonClientWithoutVms(DaemonCase):
    """Bad requests the daemon answers without running a VM: these run on any host."""

    needs_kvm = False

    def test_bad_requests_get_their_code_and_name_the_field(self):
        c = self.client
        spec = HvmmClient.spec

        def create(name="bad", **fields):
            return lambda: c.create_vm(name, spec(**fields))

        def create_with(mutate):
            def run():
                vm_spec = spec(memory_bytes=128 * MiB)
                mutate(vm_spec)
                c.create_vm("bad", vm_spec)
            return run

        table = [
            (lambda: c.get_vm("nope"), Code.NOT_FOUND, ["nope"]),
            (lambda: c.memory_stats("nope"), Code.NOT_FOUND, ["nope"]),
            (lambda: c.delete_vm("nope"), Code.NOT_FOUND, ["nope"]),
            (lambda: c.shootdown_stage2("nope"), Code.NOT_FOUND, ["nope"]),
            (create(name=""), Code.INVALID_ARGUMENT, ["name"]),
            (create(name="bad/name"), Code.INVALID_ARGUMENT, ["name"]),
            (create(name="x" * 64), Code.INVALID_ARGUMENT, ["name"]),
            (create(memory_bytes=1 << 50), Code.INVALID_ARGUMENT, ["memory_bytes"]),
            (create(memory_bytes=128 * MiB + 1), Code.INVALID_ARGUMENT, ["memory_bytes"]),
            (create(memory_bytes=PAGE), Code.INVALID_ARGUMENT, ["memory_bytes"]),
            (create(vcpus=1000), Code.INVALID_ARGUMENT, ["vcpus"]),
            (create(kernel="/nonexistent/kernel"), Code.INVALID_ARGUMENT, ["kernel"]),
            (create(kernel="/tmp"), Code.INVALID_ARGUMENT, ["kernel"]),
            (create(cmdline="x" * 70000), Code.INVALID_ARGUMENT, ["cmdline"]),
            (create(reclaim_policy="bogus=1"), Code.INVALID_ARGUMENT, ["reclaim"]),
            (create(memory_bytes=128 * MiB, balloon_target_bytes=256 * MiB),
             Code.INVALID_ARGUMENT, ["balloon"]),
            (create_with(lambda s: setattr(s, "dirty_tracking", "bitmap")),
             Code.INVALID_ARGUMENT, ["dirty_tracking"]),
            (create_with(lambda s: setattr(s, "fault_around_bytes", 3000)),
             Code.INVALID_ARGUMENT, ["fault_around"]),
        ]
        for call, code, words in table:
            self.assert_status(call, code, *words)
            self.assertEqual(c.list_vms(), [], "a refused Create left a VM behind")

        c.create_vm("idle", spec(memory_bytes=128 * MiB))
        after_create = [
            (lambda: c.create_vm("idle", spec()), Code.ALREADY_EXISTS, ["idle", "name"]),
            (lambda: c.stop_vm("idle"), Code.FAILED_PRECONDITION, ["created"]),
            (lambda: c.memory_stats("idle"), Code.FAILED_PRECONDITION, ["created", "running"]),
            (lambda: c.set_balloon_target("idle", MiB), Code.FAILED_PRECONDITION,
             ["created", "running"]),
            (lambda: c.shootdown_stage1("idle"), Code.FAILED_PRECONDITION,
             ["created", "running"]),
        ]
        for call, code, words in after_create:
            self.assert_status(call, code, *words)
            self.assertEqual([vm.name for vm in c.list_vms()], ["idle"])
        c.delete_vm("idle")
        self.assertEqual(c.list_vms(), [])
        self.assertTrue(self.daemon.running())


if __name__ == "__main__":
    if "--list-imports" in sys.argv:
        # For tests/nested-kvm/run.sh: the files this test needs, after exercising a channel.
        import import_list
        import_list.print_files(HvmmClient)
        sys.exit(0)
    gtest_runner.main(sys.modules[__name__])
