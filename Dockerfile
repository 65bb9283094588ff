# vapi-chargeback's Airflow image: the official Airflow image with this project installed.
#
# requirements/lock.txt pins every dependency the tests ran with; it is used as a constraints
# file, so the image gets exactly those versions of what vapi-chargeback needs and nothing of
# the lock's dev-only tools (the FAB provider, the auth manager docker-compose.yml signs in
# with, is a dependency). The DAG, plugin and package are baked in, so the image runs
# without the project's checkout; docker-compose.yml mounts dags/, plugins/ and include/ over
# them for live editing. No secret is in the image: .dockerignore keeps .env out and every
# key comes from the environment at run time. A production deployment adds what this file
# cannot: the company's identity provider (webserver_config.py), TLS in front of the
# api-server and secrets from a secrets manager (see the deployment docs). The Airflow version
# here must equal the lock's apache-airflow (tests/unit/test_docker_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

ARG AIRFLOW_VERSION=3.3.2

COPY --chown=airflow:0 requirements/lock.txt /opt/vapi-chargeback/requirements/lock.txt
COPY --chown=airflow:0 pyproject.toml README.md /opt/vapi-chargeback/
COPY --chown=airflow:0 include/ /opt/vapi-chargeback/include/

# Pinning apache-airflow as well keeps pip from moving the image's own Airflow. The
# `emulator` extra is there because docker-compose.yml's emulator profile runs this image;
# an image for the real API alone can drop it.
RUN pip install --no-cache-dir \
        --constraint /opt/vapi-chargeback/requirements/lock.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "/opt/vapi-chargeback[emulator]"

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
