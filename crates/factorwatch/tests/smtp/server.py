"""A real SMTP server for factorwatch's end-to-end email test: aiosmtpd with STARTTLS required
and AUTH (user "factorwatch", password from --password). Each accepted message is written to
--dir as <n>.eml, its envelope recipients to <n>.rcpt. --fail-first N answers the first N
messages "451 4.3.0" (a relay in trouble). --pipelining offers PIPELINING (RFC 2920) in its EHLO
answer, as Postfix does (aiosmtpd reads commands in order either way). Prints "ready" once listening;
stops when stdin closes.
"""
import argparse
import itertools
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, out, fail_first):
        self.out = out
        self.fail_first = fail_first
        self.n = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        if self.fail_first > 0:
            self.fail_first -= 1
            return "451 4.3.0 Temporary failure, try again later"
        n = next(self.n)
        with open(os.path.join(self.out, f"{n}.rcpt.tmp"), "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        with open(os.path.join(self.out, f"{n}.eml.tmp"), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(os.path.join(self.out, f"{n}.rcpt.tmp"), os.path.join(self.out, f"{n}.rcpt"))
        os.rename(os.path.join(self.out, f"{n}.eml.tmp"), os.path.join(self.out, f"{n}.eml"))
        return "250 2.0.0 OK"


class PipeliningHandler(Handler):
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--pipelining", action="store_true")
    a = p.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"factorwatch"
            and auth_data.password == a.password.encode()
        )
        return AuthResult(success=ok, handled=False)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)
    handler = (PipeliningHandler if a.pipelining else Handler)(a.dir, a.fail_first)
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=a.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
