"""The ZoomUserGrant wing: a Zoom user's authorization of a user-managed app (the links and
pages a browser opens, the callback), refresh-token rotation, and Zoom's deauthorization
notices; OBF tokens are minted with what it keeps."""
