"""The REST side's HTTP behaviour in one checkout: malformed and oversized Content-Length, a non-/v1 path,
and SIGTERM with an idle connection open (the toy model of tests/serving_toy.py).

    python benchmarks/serving_http.py [CHECKOUT]   # default: this one; e.g. an older commit's `git archive`
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

repo = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
sys.path[:0] = [str(repo), str(repo / "tests")]
from serving_toy import _free_port, write_toy_model  # noqa: E402

work = Path(tempfile.mkdtemp(prefix="serving-http-"))
write_toy_model(work / "toy" / "1", 1, 1)
(work / "m.config").write_text(f'model_config_list {{ config {{ name: "toy" base_path: "{work}/toy" '
                               'model_platform: "tensorflow" } }')


def start():
    g, r = _free_port(), _free_port()
    env = dict(os.environ, PYTHONPATH=str(repo))
    p = subprocess.Popen([sys.executable, "-m", "viton_tf.cli", "serve", "--model-config", str(work / "m.config"),
                          "--grpc-port", str(g), "--rest-port", str(r)], env=env, cwd=repo,
                         stdout=open(work / "log", "a"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600  # TF's import alone can take minutes on a loaded machine
    while time.monotonic() < deadline and p.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", r), timeout=1).close()
            return p, r
        except OSError:
            time.sleep(0.2)
    p.kill()
    raise SystemExit(f"the server did not come up; see {work / 'log'}")


def raw(port, data, wait=10):
    """The status line the server answers DATA with (or "(nothing)" within WAIT s), and the seconds taken."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return (answer.split(b"\r\n")[0].decode() or "(nothing)"), round(time.monotonic() - start, 1)


p, r = start()
try:
    post = b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    print("Content-Length -1  :", raw(r, post + b"Content-Length: -1\r\n\r\n{}"))
    print("Content-Length abc :", raw(r, post + b"Content-Length: abc\r\n\r\n{}"))
    print("Content-Length 300Mi, no body sent:", raw(r, post + b"Content-Length: %d\r\n\r\n" % (300 * 2**20)))
    print("GET /               :", raw(r, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    print("server alive:", p.poll() is None)
    idle = socket.create_connection(("127.0.0.1", r))
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(timeout=40)
        print(f"SIGTERM with one idle connection: exited {code} after {time.monotonic() - t:.1f} s")
    except subprocess.TimeoutExpired:
        print(f"SIGTERM with one idle connection: still alive after {time.monotonic() - t:.1f} s")
    idle.close()
finally:
    if p.poll() is None:
        p.kill()
    p.wait()
