"""The reference: how most teams poll Okta's System Log for MFA changes today. A straightforward
poller with requests + json: follow the `next` links, keep the MFA event types, write NDJSON.
Stops at the first empty page (caught up). With FILTER (a System Log `filter` expression, such as
the one factorwatch sends), Okta is asked for those events only, as factorwatch does by default.

    python3 python_poller.py BASE_URL TOKEN OUT.ndjson SINCE [FILTER]
"""
import json
import sys

import requests

MFA_EVENT_TYPES = {
    "user.mfa.factor.activate",
    "user.mfa.factor.deactivate",
    "user.mfa.factor.reset_all",
    "user.mfa.factor.update",
    "user.mfa.factor.suspend",
    "user.mfa.factor.unsuspend",
    "user.mfa.attempt_bypass",
    "system.mfa.factor.activate",
    "system.mfa.factor.deactivate",
    "security.authenticator.lifecycle.activate",
    "security.authenticator.lifecycle.deactivate",
}


def main():
    base, token, out, since = sys.argv[1:5]
    server_filter = sys.argv[5] if len(sys.argv) > 5 else None
    session = requests.Session()
    session.headers["Authorization"] = f"SSWS {token}"
    session.headers["Accept"] = "application/json"
    url = f"{base}/api/v1/logs"
    params = {"since": since, "limit": "1000"}
    if server_filter:
        params["filter"] = server_filter
    seen = kept = 0
    with open(out, "w") as f:
        while True:
            response = session.get(url, params=params, timeout=30)
            response.raise_for_status()
            events = response.json()
            if not events:
                break
            for event in events:
                seen += 1
                if event.get("eventType") in MFA_EVENT_TYPES:
                    f.write(json.dumps(event) + "\n")
                    kept += 1
            url, params = response.links["next"]["url"], None
    print(f"{seen} events, {kept} MFA changes", file=sys.stderr)


if __name__ == "__main__":
    main()
