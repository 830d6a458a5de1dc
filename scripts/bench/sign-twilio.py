#!/usr/bin/env python3
"""Pre-signs Twilio messaging webhooks for scripts/bench/twilio.lua (wrk's Lua has no HMAC).

Usage: sign-twilio.py URL AUTH_TOKEN TO COUNT CUSTOMERS > requests.tsv

Each line is `signature<TAB>form body`: a distinct MessageSid, a From among CUSTOMERS numbers,
signed exactly as Twilio signs (base64 HMAC-SHA1 of the URL and the sorted name/value pairs).
"""
import base64
import hashlib
import hmac
import sys
import urllib.parse

url, token, to, count, customers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
account = "AC" + "0123456789abcdef" * 2
key = token.encode()
out = sys.stdout
for n in range(count):
    # 425-230-XXXX and 425-231-XXXX: valid US numbers in the numbering plan.
    c = n % customers
    sender = "+1425%03d%04d" % (230 + c // 10000, c % 10000)
    sid = "SM%032x" % n
    params = [
        ("ToCountry", "US"), ("SmsMessageSid", sid), ("NumMedia", "0"), ("From", sender),
        ("To", to), ("Body", "Hello, I need help with order %d" % n), ("MessageSid", sid),
        ("AccountSid", account), ("NumSegments", "1"), ("ApiVersion", "2010-04-01"),
    ]
    data = url + "".join(name + value for name, value in sorted(params))
    signature = base64.b64encode(hmac.new(key, data.encode(), hashlib.sha1).digest()).decode()
    out.write(signature + "\t" + urllib.parse.urlencode(params) + "\n")
