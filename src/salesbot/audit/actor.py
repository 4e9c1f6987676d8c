"""Who performs a manager action: a user account, or a system actor such as the shared API token."""

from __future__ import annotations

from dataclasses import dataclass

from salesbot.models import User, UserRole

API_ACTOR = "api"


@dataclass(frozen=True)
class Actor:
    name: str
    user_id: int | None = None
    role: UserRole | None = None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(name=user.username, user_id=user.id, role=user.role)

    @property
    def is_admin(self) -> bool:
        """Admins, and system actors (the shared API token has always been allowed everything)."""
        return self.user_id is None or self.role is UserRole.ADMIN


SYSTEM_API = Actor(API_ACTOR)
