"""The custom resources as pydantic models, one module per kind under its API version (as
azimuth-caas-operator lays them out): the single source of the CRDs (crdgen.py) and the parsed
form the operator works with. The operator imports the served version from here."""

from meetingbot_operator.models.v1alpha1 import *  # noqa: F403
from meetingbot_operator.models.v1alpha1 import __all__ as __all__
