"""nameko extensions used by several services."""
from nameko.timer import Timer


class ConfigTimer(Timer):
    """A timer whose interval (seconds) is read from config key ``key`` at setup."""

    def __init__(self, key, default, **kwargs):
        super().__init__(interval=default, **kwargs)
        self.key = key

    def setup(self):
        value = self.container.config.get(self.key)
        if value not in (None, ""):
            self.interval = float(value)
        super().setup()


config_timer = ConfigTimer.decorator
