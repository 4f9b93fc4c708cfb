"""interop_check.py - checks and reporting shared by the Python interop drivers.

A driver runs named cases; each case makes exact checks (Checks.eq and
friends) and any exception in a case (a timeout, a client error) fails that
case with its message. Every failed check prints the case, what was checked,
what arrived and what was expected. finish() prints one line per case and
the closing "N passed, N failed, N skipped" line, and returns the exit status:
0 when no case failed, 1 otherwise.

The broker under test comes from the environment set by broker_run.py:
INTEROP_HOST, INTEROP_PORT and INTEROP_BROKER (ringmq or mosquitto).
"""
import os
import sys
import time
import traceback


def host():
    return os.environ.get("INTEROP_HOST", "127.0.0.1")


def port():
    p = os.environ.get("INTEROP_PORT")
    if not p:
        print("INTEROP_PORT is not set: run this driver through broker_run.py", file=sys.stderr)
        sys.exit(2)
    return int(p)


def broker():
    return os.environ.get("INTEROP_BROKER", "ringmq")


class SkipCase(Exception):
    pass


class Checks:
    def __init__(self, driver):
        self.driver = driver
        self.case_name = None
        self.case_failed = False
        self.results = []  # (name, "PASS" | "FAIL" | "SKIP", note)
        self.checks = 0

    def fail(self, what, detail):
        self.case_failed = True
        print("FAIL %s/%s: %s: %s" % (self.driver, self.case_name, what, detail), flush=True)

    def eq(self, what, got, want):
        """Check got == want exactly."""
        self.checks += 1
        if got != want:
            self.fail(what, "got %r, want %r" % (got, want))
            return False
        return True

    def true(self, what, cond, detail=""):
        self.checks += 1
        if not cond:
            self.fail(what, detail or "condition false")
            return False
        return True

    def within(self, what, got, lo, hi):
        """Check lo <= got <= hi (for values the broker may round, like expiry)."""
        self.checks += 1
        if got is None or not lo <= got <= hi:
            self.fail(what, "got %r, want %r..%r" % (got, lo, hi))
            return False
        return True

    def ringmq_only(self, why):
        """Skip the rest of the case against mosquitto (a ringmq-specific check)."""
        if broker() != "ringmq":
            raise SkipCase("ringmq only: " + why)

    def run(self, name, fn, *args):
        self.case_name = name
        self.case_failed = False
        t0 = time.monotonic()
        note = ""
        status = None
        try:
            fn(self, *args)
        except SkipCase as e:
            status, note = "SKIP", str(e)
        except Exception as e:  # noqa: BLE001 - any error fails the case, with its story
            self.fail("exception", "%s: %s" % (type(e).__name__, e))
            traceback.print_exc(file=sys.stdout)
        if status is None:
            status = "FAIL" if self.case_failed else "PASS"
        elif self.case_failed:
            status = "FAIL"
        self.results.append((name, status, note))
        print("%s %s/%s (%.1f s)%s" % (status, self.driver, name, time.monotonic() - t0,
                                       " - " + note if note else ""), flush=True)

    def finish(self):
        n_pass = sum(1 for r in self.results if r[1] == "PASS")
        n_fail = sum(1 for r in self.results if r[1] == "FAIL")
        n_skip = sum(1 for r in self.results if r[1] == "SKIP")
        print("%s against %s: %d passed, %d failed, %d skipped (%d checks)" % (
            self.driver, broker(), n_pass, n_fail, n_skip, self.checks), flush=True)
        return 1 if n_fail else 0
