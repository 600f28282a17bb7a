"""Real peers for the delivery tests: Postfix's smtp-sink and Dovecot's
LMTP server, each on a loopback port of its own, stopped by PID."""
import os
import shutil
import signal
import subprocess
import time

from moatlib import free_port, wait_port


class SmtpSink:
    """postfix smtp-sink; every transaction dumped to a file."""

    def __init__(self, tmp):
        # smtp-sink drops to nobody: its dump directory must be reachable.
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="moat-smtp-sink-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["/usr/sbin/smtp-sink", "-u", "nobody", "-d", self.dir + "/%M.",
             f"127.0.0.1:{self.port}", "100"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.port)

    def dumps(self):
        return [open(os.path.join(self.dir, n), "rb").read()
                for n in sorted(os.listdir(self.dir))]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        if not os.environ.get("MOAT_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(port, timeout=10):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


class Dovecot:
    """Dovecot's LMTP server; users from a passwd-file, Maildir under tmp."""

    def __init__(self, tmp, users=("alice", "bob")):
        # Dovecot's auth process runs unprivileged: its files must be
        # readable outside pytest's private tmp directory.
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="moat-dovecot-")
        os.chmod(self.dir, 0o755)
        self.mail = os.path.join(self.dir, "mail")
        os.makedirs(os.path.join(self.dir, "run"))
        os.makedirs(self.mail)
        os.chmod(self.mail, 0o777)
        self.port = free_port()
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u in users:
                f.write(f"{u}::65534:65534::{self.mail}/{u}::\n")
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(f"""base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = lmtp
ssl = no
listen = 127.0.0.1
mail_location = maildir:{self.mail}/%n
first_valid_uid = 1
auth_username_format = %n
userdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
passdb {{
  driver = static
  args = nopassword=y
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
""")
        self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-c", conf, "-F"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(self.port)

    def delivered(self, user):
        d = os.path.join(self.mail, user, "new")
        if not os.path.isdir(d):
            return []
        return [open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
