"""Where Zoom lives: commercial, Zoom for Government, or any explicit base URLs (a simulator)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from meetingbot_api.v1alpha1.zoomaccount import Cloud


class Endpoints(BaseModel):
    """`oauth_url` is the token endpoint; `api_url` the REST base, ending in /v2."""

    model_config = ConfigDict(frozen=True)

    oauth_url: str
    api_url: str

    @classmethod
    def for_cloud(cls, cloud: Cloud) -> Endpoints:
        if cloud is Cloud.GOVERNMENT:
            return cls(
                oauth_url="https://zoomgov.com/oauth/token",
                api_url="https://api.zoomgov.com/v2",
            )
        # https://api.zoom.us always works, whatever api_url a token response names.
        return cls(oauth_url="https://zoom.us/oauth/token", api_url="https://api.zoom.us/v2")
