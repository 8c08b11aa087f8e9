"""A weather station as a datasock data node.

Run it next to a running stack (``make up`` in another shell), from the
repository root so that it finds the stack's state directory::

    .venv/bin/python examples/weather_station.py

then ask for its data::

    .venv/bin/datasock get weather temperature humidity wind_speed --start -60

This is a *live* node: it has no archive of its own. Every second the SDK calls
``sample()``, keeps the readings in a ring buffer in memory and serves
``get_fields``/``get_data`` from that buffer. It also publishes each new
sample on the topic ``org.simonsobservatory.consumer.weather.samples``.

A real station would read a serial port or a network socket in ``sample()``;
blocking there is fine, because the SDK calls it in a worker thread. This one
computes its readings from the clock, so the values are reproducible and a
test can check them: the value at time ``t`` is ``temperature(t)`` etc.
"""
import math

from datasock.datanodes import Field, LiveDataNode, run

DAY = 86400.0  # s


def temperature(t: float) -> float:
    """Air temperature in degC: 12 degC mean, 6 degC daily swing, warmest at 15:00 UTC."""
    return 12.0 + 6.0 * math.cos(2 * math.pi * (t - 15 * 3600.0) / DAY)


def humidity(t: float) -> float:
    """Relative humidity in %: high when it is cold."""
    return 70.0 - 2.5 * (temperature(t) - 12.0)


def wind_speed(t: float) -> float:
    """Wind speed in m/s: gusts with periods of 7 and 2 minutes on a 4 m/s breeze."""
    return (4.0 + 1.5 * math.sin(2 * math.pi * t / 420.0)
            + 0.5 * math.sin(2 * math.pi * t / 120.0))


class WeatherStation(LiveDataNode):
    # The node's name: its procedures become
    # org.simonsobservatory.consumer.weather.get_fields / .get_data
    name = "weather"
    description = "Weather station on the roof (example)"

    # Keep one hour of 1 s samples in memory per timeline (the default is a day).
    capacity = 3600

    def live_fields(self):
        # All three fields share the timeline "station": they are read together,
        # every `interval` seconds, and share one array of sample times.
        return [
            Field("temperature", "station", units="degC", interval=1.0,
                  description="air temperature, 2 m above the roof"),
            Field("humidity", "station", units="%", interval=1.0,
                  description="relative humidity"),
            Field("wind_speed", "station", units="m/s", interval=1.0,
                  description="wind speed, 1 s average"),
        ]

    def sample(self, timeline, now):
        # Called by the SDK once per interval, in a worker thread, with the
        # Unix time of the reading. Return one value per field of `timeline`.
        return {
            "temperature": temperature(now),
            "humidity": humidity(now),
            "wind_speed": wind_speed(now),
        }


if __name__ == "__main__":
    run(WeatherStation())
