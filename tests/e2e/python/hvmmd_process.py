"""HvmmdProcess: the real hvmmd of the build on a temporary socket, with a temporary config
file and state directory, for one test (the Python twin of tests/e2e/support/hvmmd_process.h).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from hvmm_client import HvmmClient, HvmmError
from hvmm_client.client import HEALTH_SERVING


class HvmmdProcess:
    def __init__(self, paths, vmid_bits=8, ready_timeout=30.0):
        self.directory = tempfile.mkdtemp(prefix="hvmm-e2e-py-", dir="/tmp")
        self.socket = os.path.join(self.directory, "hvmmd.sock")
        self.state_dir = os.path.join(self.directory, "state")
        self.log_path = os.path.join(self.directory, "hvmmd.log")
        os.mkdir(self.state_dir)
        config = {
            "socket": self.socket,
            "state-dir": self.state_dir,
            "vm-process": paths["hvmm_vm"],
            "vmid-bits": str(vmid_bits),
            "log-level": "debug",
        }
        config_path = os.path.join(self.directory, "hvmmd.conf")
        with open(config_path, "w") as config_file:
            for key, value in sorted(config.items()):
                config_file.write('%s = "%s"\n' % (key, value))
        self._log = open(self.log_path, "ab")
        # A process group of its own, so a hung daemon is killed with its VM processes.
        self.process = subprocess.Popen(
            [paths["hvmmd"], "--config", config_path], stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = HvmmClient.unix(self.socket)
        try:
            self._wait_serving(ready_timeout)
        except Exception:
            self.stop()
            raise

    def _wait_serving(self, timeout):
        deadline = time.monotonic() + timeout
        last = "the socket never appeared"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("hvmmd ended (status %s) before serving; its log:\n%s"
                                   % (self.process.returncode, self.log()))
            if os.path.exists(self.socket):
                try:
                    status = self.client.health(timeout=1.0)
                    if status == HEALTH_SERVING:
                        return
                    last = "health status %d" % status
                except HvmmError as error:
                    last = str(error)
            time.sleep(0.02)
        raise RuntimeError("hvmmd did not serve within %ss: %s; its log:\n%s"
                           % (timeout, last, self.log()))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as log_file:
                return log_file.read()
        except OSError:
            return ""

    def running(self):
        return self.process.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM (the daemon stops its VMs), SIGKILL of the group after `timeout`."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        return self.process.returncode
