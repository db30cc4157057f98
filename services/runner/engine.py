"""The runner's Docker engine: the errors that say it could not be reached."""
import http.client

import docker
import requests

ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError,
                 http.client.HTTPException, ValueError)
