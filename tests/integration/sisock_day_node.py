"""A data node written the sisock way, for the windowed-call tests:
``python sisock_day_node.py NAME [INTERVAL]``.

It subclasses sisock's own ``sisock.base.DataNodeServer`` (imported from ../shared/sisock,
unmodified) and starts as sisock's example nodes do, with autobahn's ``ApplicationRunner``
and its stock 1 MiB message cap; WAMP_USER, WAMP_SECRET, CROSSBAR_HOST and
CROSSBAR_TLS_PORT come from the environment, the router's certificate from
``.crossbar/server_cert.pem`` in the working directory.

It serves one field, ``noise``, at 1 Hz over one day: http_nodes.sisock_noise from
SISOCK_DAY_START to SISOCK_DAY_END (noise around 4 K with one spike). Like sisock's weather example it ignores
``min_stride``, so a one-day reply (86,400 samples, over 1.5 MB) exceeds the node's cap.
INTERVAL (default 1) is the timeline interval get_fields declares: a wrong one (3600)
makes windows sized from it too long for the node's cap.
"""
import math
import sys

import numpy as np
import six
from autobahn.twisted.wamp import ApplicationRunner
from OpenSSL import crypto
from twisted.internet._sslverify import OpenSSLCertificateAuthorities
from twisted.internet.ssl import CertificateOptions

import sisock.base
from http_nodes import SISOCK_DAY_END as DAY_END, SISOCK_DAY_START as DAY_START, sisock_noise as noise

class DayNode(sisock.base.DataNodeServer):
    description = "one day of a noisy 1 Hz field (sisock-style node)"

    def __init__(self, config, name, interval):
        super().__init__(config)
        self.name, self.interval = name, interval

    def _get_fields_blocking(self, start, end):
        return ({"noise": {"description": "noisy temperature", "timeline": "one_hz", "type": "number",
                           "units": "K"}},
                {"one_hz": {"interval": self.interval, "field": ["noise"]}})

    def _get_data_blocking(self, field, start, end, min_stride=None):
        start = max(sisock.base.sisock_to_unix_time(start), DAY_START)
        end = min(sisock.base.sisock_to_unix_time(end), DAY_END)
        t = np.arange(math.ceil(start), end, 1.0) if end > start else np.zeros(0)
        data = {f: (noise(t).tolist() if f == "noise" else []) for f in field}
        timeline = {"one_hz": {"t": t.tolist(), "finalized_until": float(DAY_END)}} if len(t) else {}
        return {"data": data, "timeline": timeline}


if __name__ == "__main__":
    node_name = sys.argv[1]
    declared = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    with open(".crossbar/server_cert.pem") as fp:
        cert = crypto.load_certificate(crypto.FILETYPE_PEM, six.u(fp.read()))
    options = CertificateOptions(trustRoot=OpenSSLCertificateAuthorities([cert]))
    runner = ApplicationRunner("wss://%s:%d/ws" % (sisock.base.SISOCK_HOST, sisock.base.SISOCK_PORT),
                               sisock.base.REALM, ssl=options)
    runner.run(lambda config: DayNode(config, node_name, declared))
