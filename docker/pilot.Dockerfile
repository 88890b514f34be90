# The pilot image: nothing but the static binary, to copy into other images as users copy tini:
#
#   COPY --from=pilot /usr/local/bin/pilot /usr/local/bin/pilot
#
# Built by scripts/docker-images.sh from the static x86_64 binary it stages (the build context is
# target/docker/), as pilot:latest and pilot:VERSION. It also runs on its own:
# `docker run --rm pilot -version`.
FROM scratch
COPY pilot /usr/local/bin/pilot
ENTRYPOINT ["/usr/local/bin/pilot"]
