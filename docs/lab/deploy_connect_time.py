# Time from spawn until MARK-42 shows in the client's terminal; then Ctrl-^ . to quit.
import os, pty, select, sys, time
t0 = time.time()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
buf = b""
while time.time() - t0 < 30:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try:
            d = os.read(fd, 65536)
        except OSError:
            break
        if not d:
            break
        buf += d
        if b"MARK-42" in buf:
            print("%.3f %s" % (time.time() - t0, "deployed" if b"installing abide" in buf else "present"))
            os.write(fd, b"\x1e.")
            break
else:
    print("timeout", buf[-300:])
try:
    os.waitpid(pid, 0)
except Exception:
    pass
