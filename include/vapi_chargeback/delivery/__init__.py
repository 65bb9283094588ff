"""E-mail delivery of published statements, free of Airflow: compose, send through a ``Sender``, log.

``deliver_month`` mails each cost-center owner their workbook and finance the full
workbook and CSV, at most once per month unless forced (and then once per run), and
records who got what in ``{output}/_delivery/{YYYY-MM}.json`` and
``{output}/{YYYY-MM}/delivery.json``.
"""

from vapi_chargeback.delivery.deliver import (
    DeliveryError,
    DeliveryRefusedError,
    DeliveryReport,
    DeliverySetupError,
    MonthIsDraftError,
    MonthNotPublishedError,
    deliver_month,
)
from vapi_chargeback.delivery.log import DELIVERY_NAME, DeliveryLog, MessageRecord, read_log
from vapi_chargeback.delivery.send import (
    PermanentSendError,
    Sender,
    SendError,
    TransientSendError,
)

__all__ = [
    "DELIVERY_NAME",
    "DeliveryError",
    "DeliveryLog",
    "DeliveryRefusedError",
    "DeliveryReport",
    "DeliverySetupError",
    "MessageRecord",
    "MonthIsDraftError",
    "MonthNotPublishedError",
    "PermanentSendError",
    "SendError",
    "Sender",
    "TransientSendError",
    "deliver_month",
    "read_log",
]
