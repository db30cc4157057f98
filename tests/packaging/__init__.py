"""The project as a user installs it: the built wheel in a virtualenv of its own."""
