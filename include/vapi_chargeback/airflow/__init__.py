"""The only package of the core that imports Airflow: thin adapters from Airflow objects to the core."""
