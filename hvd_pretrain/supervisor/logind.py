"""systemd-logind facts that decide whether a job survives logout.

- KillUserProcesses=yes: at logout every process in the session's scope is
  killed, whatever nohup or setsid did. Only leaving the scope helps
  (`systemd-run --user`), and the user manager that then owns the job lives on
  after the last logout only when lingering is enabled.
- Linger off: the user manager (and everything started with `systemd-run --user`)
  stops when the user's last session ends.

Everything here degrades gracefully: no logind, no loginctl, no D-Bus (containers,
batch nodes) simply mean "logind will not kill anything".
"""

import configparser
import getpass
import glob
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass, field

CONF_GLOBS = (
    "/usr/lib/systemd/logind.conf.d/*.conf",
    "/usr/local/lib/systemd/logind.conf.d/*.conf",
    "/etc/systemd/logind.conf",
    "/etc/systemd/logind.conf.d/*.conf",
    "/run/systemd/logind.conf.d/*.conf",
)


@dataclass
class LogindFacts:
    user: str
    kill_user_processes: object = None    # True / False / None (unknown)
    kill_source: str = "unknown"
    kill_exclude_users: list = field(default_factory=lambda: ["root"])
    kill_only_users: list = field(default_factory=list)
    linger: object = None                 # True / False / None (unknown)
    session_scope: object = None          # the logind session scope we run in, or None
    systemd_run: bool = False

    @property
    def kills_this_user(self):
        """True/False/None: would logout kill the processes of this session?"""
        if self.kill_user_processes is not True:
            return self.kill_user_processes
        if self.user in self.kill_exclude_users:
            return False
        if self.kill_only_users and self.user not in self.kill_only_users:
            return False
        return True

    @property
    def at_risk(self):
        """True when a plain detached process in this session would be killed at logout."""
        return bool(self.session_scope) and self.kills_this_user is True


def current_user():
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return getpass.getuser()


def _bool(text):
    value = str(text).strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    return None


def read_conf(globs=CONF_GLOBS):
    """[Login] settings from logind.conf and its drop-ins, later files winning."""
    settings = {}
    for pattern in globs:
        for path in sorted(glob.glob(pattern)):
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            try:
                parser.read(path)
            except (configparser.Error, OSError, UnicodeDecodeError):
                continue
            if parser.has_section("Login"):
                for key, value in parser.items("Login"):
                    settings[key.lower()] = (value, path)
    return settings


def _loginctl(args, timeout=3):
    exe = shutil.which("loginctl")
    if not exe:
        return None
    try:
        out = subprocess.run([exe] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def session_scope(cgroup_path="/proc/self/cgroup"):
    """The logind session scope (e.g. 'session-12.scope') this process runs in, or None."""
    try:
        with open(cgroup_path) as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(r"/(session-[^/\s]+\.scope)", text)
    return match.group(1) if match else None


def linger_file(user):
    return os.path.exists(os.path.join("/var/lib/systemd/linger", user))


def facts(user=None, conf_globs=CONF_GLOBS, cgroup_path="/proc/self/cgroup", loginctl=_loginctl):
    """What logind will do to this user's processes at logout. loginctl(args) -> {key: value} or None
    (the running manager's answer; when it has none, logind.conf and its drop-ins decide)."""
    user = user or current_user()
    result = LogindFacts(user=user, session_scope=session_scope(cgroup_path),
                         systemd_run=shutil.which("systemd-run") is not None)
    manager = loginctl(["show-session", "-p", "KillUserProcesses", "-p", "KillExcludeUsers",
                         "-p", "KillOnlyUsers"])
    if manager and "KillUserProcesses" in manager:
        result.kill_user_processes = _bool(manager["KillUserProcesses"])
        result.kill_source = "loginctl"
        result.kill_exclude_users = manager.get("KillExcludeUsers", "root").split()
        result.kill_only_users = manager.get("KillOnlyUsers", "").split()
    else:
        conf = read_conf(conf_globs)
        if "killuserprocesses" in conf:
            value, path = conf["killuserprocesses"]
            result.kill_user_processes = _bool(value)
            result.kill_source = path
        if "killexcludeusers" in conf:
            result.kill_exclude_users = conf["killexcludeusers"][0].split()
        if "killonlyusers" in conf:
            result.kill_only_users = conf["killonlyusers"][0].split()
    user_info = loginctl(["show-user", user, "-p", "Linger"])
    if user_info and "Linger" in user_info:
        result.linger = _bool(user_info["Linger"])
    elif os.path.isdir("/var/lib/systemd/linger"):
        result.linger = linger_file(user)
    return result


def enable_linger_command(user=None):
    return "loginctl enable-linger %s" % (user or current_user())
