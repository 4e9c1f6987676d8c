"""ORM models, one file per table. Importing this package registers every table on `Base.metadata`, and the
session hooks that turn a rising `needs_attention` flag into a team alert (`salesbot.alerts.attention`)."""

from salesbot.models.alert import Alert, AlertChannel, AlertDelivery, AlertDeliveryStatus, AlertKind
from salesbot.models.audit_event import AuditEvent
from salesbot.models.conversation import Conversation
from salesbot.models.crm_link import CrmLink
from salesbot.models.customer import Customer
from salesbot.models.customer_memory import CustomerMemory
from salesbot.models.enums import (
    Author,
    Channel,
    ConversationStatus,
    CrmObject,
    CrmSyncState,
    DeliveryStatus,
    Direction,
    Owner,
    PaymentStatus,
    SalesStage,
    UserRole,
)
from salesbot.models.follow_up import FollowUp, FollowUpStatus
from salesbot.models.knowledge_chunk import KnowledgeChunk
from salesbot.models.llm_usage import LlmUsage
from salesbot.models.message import Message
from salesbot.models.message_media import MessageMedia
from salesbot.models.payment_event import PaymentEvent
from salesbot.models.payment_link import PaymentLink
from salesbot.models.product import EMBEDDING_DIM, Product
from salesbot.models.quote import Quote
from salesbot.models.user import ApiToken, User

__all__ = [
    "EMBEDDING_DIM",
    "Alert",
    "AlertChannel",
    "AlertDelivery",
    "AlertDeliveryStatus",
    "AlertKind",
    "ApiToken",
    "AuditEvent",
    "Author",
    "Channel",
    "Conversation",
    "ConversationStatus",
    "CrmLink",
    "CrmObject",
    "CrmSyncState",
    "Customer",
    "CustomerMemory",
    "DeliveryStatus",
    "Direction",
    "FollowUp",
    "FollowUpStatus",
    "KnowledgeChunk",
    "LlmUsage",
    "Message",
    "MessageMedia",
    "Owner",
    "PaymentEvent",
    "PaymentLink",
    "PaymentStatus",
    "Product",
    "Quote",
    "SalesStage",
    "User",
    "UserRole",
]

# Last: the hooks use the models above.
import salesbot.alerts.attention  # noqa: F401
