"""The files the Python client's tests need, for copying them into the nested-KVM guest.

tests/nested-kvm/run.sh runs `e2e_test.py --list-imports` on the host: the client is made to
do what the tests do (a channel, a failed call, a stream, a traceback), so the modules grpc
and unittest import lazily are loaded too; then every loaded module's file (source, bytecode,
extension) is printed, one absolute path a line, with the interpreter first. run.sh copies
them, and the shared libraries `ldd` names for the interpreter and the extensions.
"""

import os
import sys
import traceback


def _exercise(client_class):
    import encodings.ascii  # noqa: F401  the guest's C locale may pick any of these
    import encodings.latin_1  # noqa: F401
    import encodings.utf_8  # noqa: F401
    client = client_class.unix("/nonexistent/hvmmd.sock", timeout=0.2)
    try:
        client.health(timeout=0.2)
    except Exception:
        traceback.format_exc()
    watch = client.watch_notifier("nothing")
    watch.wait_for(lambda event: False, 0.2)
    watch.close()
    client.close()


def print_files(client_class):
    _exercise(client_class)
    files = set()
    for module in list(sys.modules.values()):
        for attribute in ("__file__", "__cached__"):
            path = getattr(module, attribute, None)
            if isinstance(path, str) and os.path.isfile(path):
                files.add(os.path.abspath(path))
    # The interpreter as the wrapper names it (/usr/bin/python3: its prefix is found from it).
    print(sys.executable)
    for path in sorted(files):
        print(path)
