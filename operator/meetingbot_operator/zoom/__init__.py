"""Everything that talks to Zoom: OAuth, ZAK and OBF minting, users, rate limits, signatures."""

from meetingbot_api.v1alpha1.zoomaccount import Cloud, RatePlan
from meetingbot_operator.zoom.client import ZoomClient, ZoomUser
from meetingbot_operator.zoom.credentials import AccessToken, ApiCredentials, SdkCredentials, Zak
from meetingbot_operator.zoom.endpoints import Endpoints
from meetingbot_operator.zoom.errors import ZoomError
from meetingbot_operator.zoom.ratelimit import Category
from meetingbot_operator.zoom.signature import sdk_signature

__all__ = [
    "AccessToken",
    "ApiCredentials",
    "Category",
    "Cloud",
    "Endpoints",
    "RatePlan",
    "SdkCredentials",
    "Zak",
    "ZoomClient",
    "ZoomError",
    "ZoomUser",
    "sdk_signature",
]
