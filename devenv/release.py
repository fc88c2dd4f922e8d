"""`make release`: the operator and sandbox images, the chart, an SBOM for each image, all of it
signed with the user's key and pushed to their OCI registry. Reproducible from the repository:
the images are built from Debian's packages and PyPI (bot-image/build.sh), the tools at the
versions pinned in devenv/cluster/versions.env.

    make release REGISTRY=registry.example.com/meetingbot COSIGN_KEY=cosign.key \\
        [VERSION=0.1.0] [PLATFORMS=linux/amd64,linux/arm64] [INSECURE_REGISTRY=1]

COSIGN_PASSWORD (the key's password) comes from the environment, never from arguments. What
was released goes to dist/<version>/release.json: every image by digest (the index and each
platform's image), each SBOM, the chart's OCI digest; and how to verify and install it.
The bot image is not released: Zoom's SDK licence forbids redistributing it (docs/install.md).
Steps and why: docs/release.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devenv.cluster import cluster

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "meetingbot-operator"


@dataclass(frozen=True)
class Image:
    name: str  # the repository's last path element
    dockerfile: str
    values_key: tuple[str, ...]  # where the chart's values name it


IMAGES = (
    Image("meetingbot-operator", "operator/Dockerfile", ("image",)),
    Image("meetingbot-zoomsim", "devenv/zoomsim/Dockerfile", ("sandbox", "image")),
)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def say(message: str) -> None:
    print(f"[release {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    registry: str  # host[:port]/path, where images and the chart go
    version: str
    platforms: tuple[str, ...]
    key: Path
    insecure: bool  # a registry over plain HTTP (a local one)
    out: Path


class Tools:
    def __init__(self, settings: Settings) -> None:
        binaries = cluster.build(extras=True)
        self.cosign, self.syft, self.helm = binaries.cosign, binaries.syft, binaries.helm
        self.settings = settings

    def run(self, *args: str | Path, both: bool = False) -> str:
        """Run a tool; its stdout (with `both`, its stderr too), or exit saying what failed."""
        result = subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, timeout=1800, check=False
        )
        if result.returncode != 0:
            raise SystemExit(
                f"release: `{Path(str(args[0])).name} {args[1]}` failed "
                f"({result.returncode}):\n{result.stderr[-3000:]}"
            )
        return result.stdout + result.stderr if both else result.stdout

    def cosign_flags(self) -> list[str]:
        return (
            ["--allow-http-registry", "--allow-insecure-registry"] if self.settings.insecure else []
        )


def build_image(image: Image, platform: str, tag: str, version: str) -> None:
    say(f"{image.name}: building for {platform}")
    # The OCI labels make the release's image distinct from a dev build of the same files
    # (the same image ID under two names confuses a kubelet that records where an image was
    # pulled from: a node that pulled it from a registry no longer counts a local import of it
    # as present).
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    labels = [
        f"org.opencontainers.image.version={version}",
        f"org.opencontainers.image.revision={revision or 'unknown'}",
        f"org.opencontainers.image.title={image.name}",
        "org.opencontainers.image.licenses=Apache-2.0",
    ]
    built = subprocess.run(
        ["bash", str(ROOT / "bot-image" / "build.sh")],
        check=False,
        stdout=subprocess.DEVNULL,
        env={
            **os.environ,
            "IMAGE": tag,
            "DOCKERFILE": image.dockerfile,
            "PLATFORM": platform,
            "IMAGE_LABELS": " ".join(labels),
        },
    )
    if built.returncode != 0:  # podman's own output, above, says why
        raise SystemExit(f"release: building {image.name} for {platform} failed")


def release_image(tools: Tools, image: Image, work: Path) -> dict[str, Any]:
    s = tools.settings
    ref = f"{s.registry}/{image.name}"
    local_list = f"localhost/release/{image.name}:{s.version}"
    subprocess.run(["podman", "manifest", "rm", local_list], capture_output=True, check=False)
    tools.run("podman", "manifest", "create", local_list)
    sboms: dict[str, str] = {}
    for platform in s.platforms:
        arch = platform.split("/")[1]
        tag = f"localhost/release/{image.name}:{s.version}-{arch}"
        build_image(image, platform, tag, s.version)
        tools.run("podman", "manifest", "add", local_list, f"containers-storage:{tag}")
        # The SBOM of exactly what is pushed: syft reads the image's layers from an OCI
        # archive (Debian's packages, the Python environment's distributions).
        archive = work / f"{image.name}-{arch}.tar"
        tools.run("podman", "save", "--format", "oci-archive", "-o", archive, tag)
        sbom = s.out / f"{image.name}-{s.version}-{arch}.spdx.json"
        tools.run(tools.syft, "scan", f"oci-archive:{archive}", "-o", f"spdx-json={sbom}", "-q")
        archive.unlink()
        sboms[arch] = str(sbom)
    say(f"{image.name}: pushing {ref}:{s.version} ({', '.join(s.platforms)})")
    digest_file = work / f"{image.name}.digest"
    tools.run(
        "podman", "manifest", "push", "--all", "--format", "oci",
        f"--tls-verify={'false' if s.insecure else 'true'}",
        "--digestfile", digest_file, local_list, f"docker://{ref}:{s.version}",
    )  # fmt: skip
    index = digest_file.read_text().strip()
    platforms = _platform_digests(tools, f"{ref}@{index}")
    # Sign the index and every platform's image (--recursive), then attach each platform's
    # SBOM as a signed in-toto attestation of that image.
    say(f"{image.name}: signing {ref}@{index}")
    tools.run(
        tools.cosign, "sign", "--yes", "--recursive", "--tlog-upload=false",
        "--key", s.key, *tools.cosign_flags(), f"{ref}@{index}",
    )  # fmt: skip
    for arch, digest in platforms.items():
        tools.run(
            tools.cosign, "attest", "--yes", "--tlog-upload=false", "--key", s.key,
            "--type", "spdxjson", "--predicate", sboms[arch], *tools.cosign_flags(),
            f"{ref}@{digest}",
        )  # fmt: skip
    return {
        "repository": ref,
        "tag": s.version,
        "digest": index,
        "platforms": platforms,
        "sboms": sboms,
    }


def _platform_digests(tools: Tools, ref: str) -> dict[str, str]:
    """Each platform's image digest in the pushed index, read back from the registry as a node
    resolves it (podman may rewrite manifests while pushing, so local digests can differ)."""
    raw = tools.run(
        "skopeo", "inspect", "--raw",
        f"--tls-verify={'false' if tools.settings.insecure else 'true'}", f"docker://{ref}",
    )  # fmt: skip
    index = json.loads(raw)
    return {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}


def release_chart(tools: Tools, images: dict[str, dict[str, Any]], work: Path) -> dict[str, Any]:
    """The chart, its default images set to what was just pushed (by digest), packaged, pushed
    as an OCI artifact and signed."""
    s = tools.settings
    staged = work / "chart" / CHART.name
    shutil.copytree(CHART, staged)
    chart_yaml = staged / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    meta["version"], meta["appVersion"] = s.version, s.version
    chart_yaml.write_text(yaml.safe_dump(meta, sort_keys=False))
    values_path = staged / "values.yaml"
    text = values_path.read_text()
    for image in IMAGES:
        released = images[image.name]
        text = _set_image(text, image, released["repository"], released["digest"])
    values_path.write_text(text)
    say(f"chart: packaging {meta['name']} {s.version}")
    tools.run(tools.helm, "package", staged, "--destination", s.out)
    package = s.out / f"{meta['name']}-{s.version}.tgz"
    target = f"oci://{s.registry}/charts"
    pushed = tools.run(
        tools.helm, "push", package, target, *(["--plain-http"] if s.insecure else []), both=True
    )
    found = DIGEST.search(pushed)
    if found is None:
        raise SystemExit(f"release: helm push printed no digest:\n{pushed}")
    ref = f"{s.registry}/charts/{meta['name']}"
    say(f"chart: signing {ref}@{found.group()}")
    tools.run(
        tools.cosign, "sign", "--yes", "--tlog-upload=false", "--key", s.key,
        *tools.cosign_flags(), f"{ref}@{found.group()}",
    )  # fmt: skip
    return {
        "repository": ref,
        "version": s.version,
        "digest": found.group(),
        "package": str(package),
    }


def _set_image(values: str, image: Image, repository: str, digest: str) -> str:
    """Point the chart's default at the released image, editing values.yaml's text so that its
    comments (the chart's documentation) stay."""
    document = yaml.safe_load(values)
    node = document
    for key in image.values_key:
        node = node[key]
    old_repository = node["repository"]
    if values.count(f"repository: {old_repository}\n") != 1:
        raise SystemExit(f"release: values.yaml names {old_repository} other than once")
    values = values.replace(f"repository: {old_repository}\n", f"repository: {repository}\n")
    # The digest line right after that repository's tag line.
    start = values.index(f"repository: {repository}\n")
    marker = 'digest: ""'
    at = values.index(marker, start)
    return values[:at] + f'digest: "{digest}"' + values[at + len(marker) :]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make release", description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default=os.environ.get("REGISTRY", ""))
    parser.add_argument("--version", default=os.environ.get("VERSION", ""))
    parser.add_argument("--platforms", default=os.environ.get("PLATFORMS", "linux/amd64"))
    parser.add_argument("--key", default=os.environ.get("COSIGN_KEY", ""))
    parser.add_argument(
        "--insecure-registry",
        action="store_true",
        default=os.environ.get("INSECURE_REGISTRY", "") not in ("", "0"),
    )
    args = parser.parse_args(argv)
    if not args.registry:
        parser.error("REGISTRY is required: where to push, e.g. registry.example.com/meetingbot")
    if not args.key or not Path(args.key).is_file():
        parser.error("COSIGN_KEY is required: a cosign private key (cosign generate-key-pair)")
    if "COSIGN_PASSWORD" not in os.environ:
        parser.error("COSIGN_PASSWORD is required in the environment (empty for a key without)")
    version = args.version or str(yaml.safe_load((CHART / "Chart.yaml").read_text())["version"])
    out = ROOT / "dist" / version
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    settings = Settings(
        registry=args.registry.rstrip("/"),
        version=version,
        platforms=tuple(p.strip() for p in args.platforms.split(",") if p.strip()),
        key=Path(args.key).resolve(),
        insecure=args.insecure_registry,
        out=out,
    )
    started = time.monotonic()
    tools = Tools(settings)
    with tempfile.TemporaryDirectory(prefix="meetingbot-release-") as tmp:
        work = Path(tmp)
        images = {image.name: release_image(tools, image, work) for image in IMAGES}
        chart = release_chart(tools, images, work)
    released = {"version": version, "images": images, "chart": chart}
    (out / "release.json").write_text(json.dumps(released, indent=2) + "\n")
    say(f"released {version} in {time.monotonic() - started:.0f} s: {out / 'release.json'}")
    print(json.dumps(released, indent=2))


if __name__ == "__main__":
    main()
