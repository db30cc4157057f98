"""Tables written by the registry service."""
from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # unique per team (migration 0019)
    repository: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    # repo@sha256:... as pulled; executions run this, not the tag
    digest: Mapped[str | None] = mapped_column(String(400))
    image_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    imported_at: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))  # unique per team
    # {"username", "password"} of a private registry, sealed with CREDENTIALS_KEY (Fernet)
    credentials: Mapped[str | None] = mapped_column(Text)
    # raised by one with every change of status (services/registry/tasks.py set_status); the events
    # and task_facts carry it, so the scheduler's copy takes a fact only over an older one (migration 0011)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # the task's labels ({} if none), filtered by ?label= through the GIN index (migration 0016)
    labels: Mapped[dict] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    # the team it belongs to and the principal that made it (migration 0018, shared/principals.py)
    team: Mapped[str] = mapped_column(String(63), index=True, default="default", server_default="default")
    submitted_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_tasks_created_at", "created_at"),
                      Index("ix_tasks_labels", "labels", postgresql_using="gin"),
                      UniqueConstraint("team", "name", name="uq_tasks_team_name"),
                      UniqueConstraint("team", "idempotency_key", name="uq_tasks_team_idempotency_key"))


class UiSession(Base):
    """A web UI sign-in (services/registry/sessions.py): the cookie's secret is never stored, only its hash."""
    __tablename__ = "ui_sessions"

    # sha256 (hex) of the secret in the browser's cookie
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # a hash of the API token signed in with: the gateway refuses the session once that token is gone
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    # epoch seconds on the database's clock
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_ui_sessions_expires_at", "expires_at"),
                      Index("ix_ui_sessions_token_created", "token_fingerprint", "created_at"))


class Principal(Base):
    """A person or a service that holds API tokens, with a role and a team (services/registry/principals.py)."""
    __tablename__ = "principals"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))   # person | service
    role: Mapped[str] = mapped_column(String(16))   # admin | operator | member | viewer
    team: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class ApiToken(Base):
    """A principal's API token: only its sha256 is kept; shown once when made (migration 0019)."""
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal: Mapped[str] = mapped_column(String(200), ForeignKey("principals.name"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, index=True)
    created_by: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),)
