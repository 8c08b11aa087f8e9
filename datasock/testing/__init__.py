"""Helpers for datasock's tests and benchmarks, never imported by datasock itself.

* :mod:`.devstack`: a throw-away stack (router, hub, nodes...) on free ports with a
  private state directory, each process stopped by its PID;
* :mod:`.mqtt`: a private Mosquitto and a collecting MQTT client (needs ``datasock[mqtt]``).
"""
