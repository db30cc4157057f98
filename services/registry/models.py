"""Tables written by the registry service."""
from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    repository: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    # repo@sha256:... as pulled; executions run this, not the tag
    digest: Mapped[str | None] = mapped_column(String(400))
    image_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    imported_at: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # {"username", "password"} of a private registry, sealed with CREDENTIALS_KEY (Fernet)
    credentials: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_tasks_created_at", "created_at"),)
