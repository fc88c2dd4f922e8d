"""The meetingbot.dev API types as pydantic models, one module per kind under its API version
(as azimuth-caas-operator lays them out): the single source of the CRDs (the operator's
crdgen.py) and the parsed form the operator, the client and the kubectl plugin work with.

A distribution of its own (pydantic and meetingbot-contract only): a backend that creates bots
imports these types without kopf or aiohttp. The served version is re-exported here."""

from meetingbot_api.v1alpha1 import *  # noqa: F403
from meetingbot_api.v1alpha1 import __all__ as __all__
