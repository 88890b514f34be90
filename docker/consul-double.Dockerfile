# The Consul test double (crates/consul-double) as an image, for the end-to-end Docker test and
# for trying the hello-world example on a machine without a registry, where hashicorp/consul
# cannot be pulled (examples/hello-world/docker-compose.double.yml). Nothing but the static
# binary; built by scripts/docker-images.sh as pilot-consul-double:latest.
FROM scratch
COPY consul-double /usr/local/bin/consul-double
EXPOSE 8500
ENTRYPOINT ["/usr/local/bin/consul-double"]
CMD ["--listen", "0.0.0.0:8500"]
