"""nameko extensions used by several services."""
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from shared.settings import settings_of


class Settings(DependencyProvider):
    """The service's typed settings (shared/settings.py), parsed once at start; a bad one stops it."""

    def setup(self):
        self.settings = settings_of(self.container)

    def get_dependency(self, worker_ctx):
        return self.settings


class ConfigTimer(Timer):
    """A timer whose interval (seconds) is the setting ``setting`` (a field of shared/settings.py)."""

    def __init__(self, setting, **kwargs):
        super().__init__(interval=None, **kwargs)
        self.setting = setting

    def setup(self):
        self.interval = getattr(settings_of(self.container), self.setting)
        super().setup()


config_timer = ConfigTimer.decorator
