"""Code used by several Stevedore services: errors, statuses, events, validation."""
