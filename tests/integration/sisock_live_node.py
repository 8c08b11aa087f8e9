"""A live sisock data node, written and started the way sisock's own example nodes are.

It subclasses sisock's real ``sisock.base.DataNodeServer`` and runs under autobahn's
``ApplicationRunner`` (sisock on PYTHONPATH, the router's certificate at
``.crossbar/server_cert.pem``, ``WAMP_USER``/``WAMP_SECRET``, ``CROSSBAR_HOST`` and
``CROSSBAR_TLS_PORT`` in the environment): ``python sisock_live_node.py NAME``.

It serves one field, ``counter``, with a sample at every whole second since it
started (value: seconds since its first sample), and, like every sisock node,
never publishes live samples: the data is there only for get_data.
"""
import math
import sys
import time

import six
from autobahn.twisted.wamp import ApplicationRunner
from OpenSSL import crypto
from twisted.internet._sslverify import OpenSSLCertificateAuthorities
from twisted.internet.ssl import CertificateOptions

import sisock

FIRST = math.ceil(time.time())


class LiveCounter(sisock.base.DataNodeServer):
    name = sys.argv[1] if len(sys.argv) > 1 else "sisock_live"
    description = "1 Hz counter (a sisock node: pull-only)"

    def get_fields(self, start, end):
        field = {"counter": {"description": "seconds since the first sample", "timeline": "one_hz",
                             "type": "number", "units": "s"}}
        timeline = {"one_hz": {"interval": 1.0, "field": ["counter"]}}
        return field, timeline

    def get_data(self, field, start, end, min_stride=None):
        now = time.time()
        start = sisock.base.sisock_to_unix_time(start)
        end = min(sisock.base.sisock_to_unix_time(end), now)
        t = [float(s) for s in range(max(FIRST, math.ceil(start)), math.ceil(end))]
        ret = {"data": {}, "timeline": {}}
        for f in field:
            ret["data"][f] = [s - FIRST for s in t] if f == "counter" else []
        if "counter" in field and t:
            ret["timeline"]["one_hz"] = {"t": t, "finalized_until": t[-1]}
        return ret


if __name__ == "__main__":
    cert = crypto.load_certificate(crypto.FILETYPE_PEM,
                                   six.u(open(".crossbar/server_cert.pem", "r").read()))
    opt = CertificateOptions(trustRoot=OpenSSLCertificateAuthorities([cert]))
    runner = ApplicationRunner("wss://%s:%d/ws" % (sisock.base.SISOCK_HOST, sisock.base.SISOCK_PORT),
                               sisock.base.REALM, ssl=opt)
    runner.run(LiveCounter)
