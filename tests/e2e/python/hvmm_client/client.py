"""HvmmClient: the hvmm.v1 services of one hvmmd, as plain method calls.

Each method sends one request and returns the response message; a failed call raises
HvmmError with the gRPC status code and the daemon's message. Streams (WatchNotifier,
WatchFaults) are read on a thread of their own into a list the caller waits on.
The generated modules (hvmm/v1/*_pb2*.py) must be importable: the build puts them in
BUILD/tests/e2e/python/stubs.
"""

import threading
import time

import grpc

from hvmm.v1 import guest_pb2
from hvmm.v1 import memory_pb2
from hvmm.v1 import notifier_pb2
from hvmm.v1 import service_pb2
from hvmm.v1 import service_pb2_grpc
from hvmm.v1 import stage2_pb2
from hvmm.v1 import tlb_pb2
from hvmm.v1 import vm_pb2

_HEALTH_METHOD = "/grpc.health.v1.Health/Check"
HEALTH_SERVING = 1


class HvmmError(Exception):
    """A call that did not succeed: its status code and the daemon's message."""

    def __init__(self, method, code, message):
        super().__init__("%s: %s: %s" % (method, code.name, message))
        self.method = method
        self.code = code
        self.message = message


def _decode_health_status(data):
    """HealthCheckResponse.status (varint field 1) from its wire bytes; 0 when absent."""
    status, at = 0, 0
    while at < len(data):
        tag = data[at]
        at += 1
        value, shift = 0, 0
        while at < len(data):
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if tag == 0x08:
            status = value
    return status


class _StreamWatch:
    """One server stream read on a thread into `events`; close() cancels it."""

    def __init__(self, call):
        self._call = call
        self._lock = threading.Condition()
        self.events = []
        self.error = None
        self.ended = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for event in self._call:
                with self._lock:
                    self.events.append(event)
                    self._lock.notify_all()
        except grpc.RpcError as error:
            with self._lock:
                if error.code() != grpc.StatusCode.CANCELLED:
                    self.error = error
        with self._lock:
            self.ended = True
            self._lock.notify_all()

    def wait_for(self, match, timeout):
        """The first event satisfying `match` within `timeout` seconds, or None."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    return None
                self._lock.wait(left)

    def snapshot(self):
        with self._lock:
            return list(self.events)

    def close(self):
        self._call.cancel()
        self._thread.join(10)


class NotifierWatch(_StreamWatch):
    """NotifierService.Watch: the VM's stage-2 invalidations (NotifierEvent)."""


class FaultWatch(_StreamWatch):
    """FaultService.Watch: stage-2 fault records (Fault)."""


class HvmmClient:
    """The services of one hvmmd at `target` ("unix:/path/to/hvmmd.sock", "host:port")."""

    def __init__(self, target, timeout=60.0):
        self.target = target
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target)
        self.vm = service_pb2_grpc.VmServiceStub(self.channel)
        self.memory = service_pb2_grpc.MemoryServiceStub(self.channel)
        self.tlb = service_pb2_grpc.TlbServiceStub(self.channel)
        self.notifier = service_pb2_grpc.NotifierServiceStub(self.channel)
        self.faults = service_pb2_grpc.FaultServiceStub(self.channel)
        self.guest = service_pb2_grpc.GuestServiceStub(self.channel)
        self.daemon = service_pb2_grpc.DaemonServiceStub(self.channel)
        self._health = self.channel.unary_unary(
            _HEALTH_METHOD, request_serializer=bytes, response_deserializer=bytes)

    @classmethod
    def unix(cls, socket_path, timeout=60.0):
        return cls("unix:" + socket_path, timeout)

    def close(self):
        self.channel.close()

    def _call(self, name, method, request, timeout=None):
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as error:
            raise HvmmError(name, error.code(), error.details()) from None

    # Health and the daemon.

    def health(self, timeout=2.0):
        """The server's overall health status (1: SERVING)."""
        data = self._call("Health.Check", self._health, b"", timeout)
        return _decode_health_status(data)

    def daemon_info(self):
        return self._call("GetDaemonInfo", self.daemon.GetDaemonInfo,
                          service_pb2.GetDaemonInfoRequest())

    # VM lifecycle.

    @staticmethod
    def spec(memory_bytes=0, vcpus=0, kernel="", cmdline="", control_channel=True,
             balloon_target_bytes=0, reclaim_policy=None):
        """A VmSpec; the defaults are the bundled guest kernel with its control channel."""
        spec = vm_pb2.VmSpec(memory_bytes=memory_bytes, vcpus=vcpus, kernel=kernel,
                             cmdline=cmdline, control_channel=control_channel)
        spec.balloon.initial_target_bytes = balloon_target_bytes
        if reclaim_policy is not None:
            spec.reclaim_policy = reclaim_policy
        return spec

    def create_vm(self, name, spec, start=False):
        request = vm_pb2.CreateVmRequest(name=name, spec=spec, start=start)
        return self._call("Create", self.vm.Create, request).vm

    def start_vm(self, name, wait=True, timeout=None):
        request = vm_pb2.StartVmRequest(name=name, wait=wait)
        return self._call("Start", self.vm.Start, request, timeout).vm

    def stop_vm(self, name, grace_ms=0, force=False, timeout=None):
        request = vm_pb2.StopVmRequest(name=name, grace_ms=grace_ms, force=force)
        return self._call("Stop", self.vm.Stop, request, timeout).vm

    def delete_vm(self, name, force=False):
        self._call("Delete", self.vm.Delete, vm_pb2.DeleteVmRequest(name=name, force=force))

    def get_vm(self, name):
        return self._call("Get", self.vm.Get, vm_pb2.GetVmRequest(name=name)).vm

    def list_vms(self):
        return list(self._call("List", self.vm.List, vm_pb2.ListVmsRequest()).vms)

    def wait_for_vm(self, name, done, timeout):
        """Poll Get until `done(vm)`; the VM then, or HvmmError DEADLINE_EXCEEDED."""
        deadline = time.monotonic() + timeout
        vm = self.get_vm(name)
        while not done(vm):
            if time.monotonic() > deadline:
                raise HvmmError("wait_for_vm", grpc.StatusCode.DEADLINE_EXCEEDED,
                                "%s is %s after %ss" % (name, vm_pb2.VmState.Name(vm.state),
                                                        timeout))
            time.sleep(0.05)
            vm = self.get_vm(name)
        return vm

    # Memory.

    def memory_stats(self, name):
        request = memory_pb2.GetMemoryStatsRequest(name=name)
        return self._call("GetMemoryStats", self.memory.GetMemoryStats, request).stats

    def set_balloon_target(self, name, target_bytes, wait_ms=0, timeout=None):
        request = memory_pb2.SetBalloonTargetRequest(name=name, target_bytes=target_bytes,
                                                     wait_ms=wait_ms)
        if timeout is None and wait_ms:
            timeout = wait_ms / 1000.0 + 10
        return self._call("SetBalloonTarget", self.memory.SetBalloonTarget, request,
                          timeout).balloon

    def dump_stage2(self, name, page_size=0, start=0, size=0, page_token=""):
        """One page of the stage-2 dump: (Stage2Dump, next_page_token)."""
        request = memory_pb2.DumpStage2Request(
            name=name, range=stage2_pb2.IpaRange(start=start, size=size), page_size=page_size,
            page_token=page_token)
        response = self._call("DumpStage2", self.memory.DumpStage2, request)
        return response.dump, response.next_page_token

    def dump_stage2_all(self, name, page_size=0, start=0, size=0):
        """Every mapping of the dump, following the page tokens: (mappings, pages read)."""
        mappings, pages, token = [], 0, ""
        while True:
            dump, token = self.dump_stage2(name, page_size, start, size, token)
            mappings.extend(dump.mappings)
            pages += 1
            if not token:
                return mappings, pages

    # TLB shootdowns.

    def shootdown_stage1(self, name, scope=tlb_pb2.STAGE1_SCOPE_KERNEL_ALL, workload=0, va=0,
                         length=0, timeout=None):
        request = tlb_pb2.TlbShootdownRequest(
            name=name, stage=tlb_pb2.TLB_STAGE_1,
            stage1=tlb_pb2.Stage1Target(scope=scope, workload=workload, va=va, length=length))
        return self._call("Shootdown", self.tlb.Shootdown, request, timeout)

    def shootdown_stage2(self, name, start=0, size=0, timeout=None):
        request = tlb_pb2.TlbShootdownRequest(
            name=name, stage=tlb_pb2.TLB_STAGE_2, range=stage2_pb2.IpaRange(start=start, size=size))
        return self._call("Shootdown", self.tlb.Shootdown, request, timeout)

    # Notifiers and faults.

    def watch_notifier(self, name, start=0, size=0, buffer=0):
        request = notifier_pb2.WatchNotifierRequest(
            name=name, filter=stage2_pb2.IpaRange(start=start, size=size), buffer=buffer)
        return NotifierWatch(self.notifier.Watch(request))

    def list_subscriptions(self, name):
        request = notifier_pb2.ListSubscriptionsRequest(name=name)
        return self._call("ListSubscriptions", self.notifier.ListSubscriptions, request)

    def watch_faults(self, name="", kinds=(), buffer=0):
        request = service_pb2.WatchFaultsRequest(name=name, kinds=list(kinds), buffer=buffer)
        return FaultWatch(self.faults.Watch(request))

    # The guest kernel's requests.

    def start_workload(self, name, bytes_, kind=guest_pb2.WORKLOAD_KIND_TOUCH_SEQUENTIAL, seed=1,
                       hold=False, timeout=None):
        request = guest_pb2.StartWorkloadRequest(name=name, kind=kind, bytes=bytes_, seed=seed,
                                                 hold=hold)
        return self._call("StartWorkload", self.guest.StartWorkload, request, timeout)

    def verify_workload(self, name, workload, timeout=None):
        request = guest_pb2.WorkloadRequest(name=name, workload=workload)
        return self._call("VerifyWorkload", self.guest.VerifyWorkload, request, timeout)

    def exit_workload(self, name, workload):
        request = guest_pb2.WorkloadRequest(name=name, workload=workload)
        self._call("ExitWorkload", self.guest.ExitWorkload, request)

    def probe(self, name, ipa, write=False, value=0):
        request = guest_pb2.ProbeRequest(name=name, ipa=ipa, write=write, value=value)
        return self._call("Probe", self.guest.Probe, request).value
