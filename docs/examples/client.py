#!/usr/bin/env python3
"""Call jidgate: sign the request (path included), check the answer's sign and nonce.
Standard library only. usage: client.py BASE_URL APP_ID SECRET app|device ENDPOINT name=value ..."""
import hashlib, hmac, json, secrets, sys, time, urllib.parse, urllib.request

base, app_id, secret, kind, endpoint, *pairs = sys.argv[1:]
params = dict(p.split("=", 1) for p in pairs)
params.update(app_id=app_id, ts=str(int(time.time())), nonce=secrets.token_urlsafe(12))
key = secret.encode()
if kind == "device":  # a device's own key: HMAC-SHA256(product secret, user_name)
    key = hmac.new(key, params["user_name"].encode(), hashlib.sha256).digest()
q = lambda s: urllib.parse.quote(s, safe="-._~")  # RFC 3986
canonical = endpoint + "\n" + "&".join(f"{q(k)}={q(v)}" for k, v in sorted(params.items()))
params["param_sign"] = hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
with urllib.request.urlopen(base + endpoint, urllib.parse.urlencode(params).encode()) as r:
    answer = json.load(r)
sign = answer.pop("sign")
text = json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
assert hmac.compare_digest(sign, hmac.new(key, text.encode(), hashlib.sha256).hexdigest()), "bad sign"
assert answer.pop("nonce") == params["nonce"], "not the answer to this request"
print(json.dumps(answer, ensure_ascii=False))
