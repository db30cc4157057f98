"""Initial schema: tasks (registry); results, details, detail_logs (scheduler).

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 04:23:09.780058
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE SEQUENCE details_seq")
    op.create_table('tasks',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('repository', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('digest', sa.String(length=400), nullable=True),
    sa.Column('image_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('imported_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_index('ix_tasks_created_at', 'tasks', ['created_at'], unique=False)
    op.create_table('detail_logs',
    sa.Column('detail_id', sa.String(length=32), nullable=False),
    sa.Column('stdout', sa.Text(), nullable=False),
    sa.Column('stderr', sa.Text(), nullable=False),
    sa.Column('stdout_truncated', sa.Boolean(), nullable=False),
    sa.Column('stderr_truncated', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('detail_id')
    )
    op.create_table('details',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), server_default=sa.text("nextval('details_seq')"), nullable=False),
    sa.Column('result_id', sa.String(length=32), nullable=False),
    sa.Column('task_id', sa.String(length=32), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('submitted_at', sa.Float(), nullable=False),
    sa.Column('start', sa.Float(), nullable=True),
    sa.Column('end', sa.Float(), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('runner', sa.String(length=200), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('container_id', sa.String(length=80), nullable=True),
    sa.Column('lease_expires_at', sa.Float(), nullable=True),
    sa.Column('not_before', sa.Float(), nullable=True),
    sa.Column('attempts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('result_id', 'index', name='uq_details_result_index')
    )
    op.create_index('ix_details_claimable', 'details', [sa.literal_column('priority DESC'), 'seq'], unique=False, postgresql_where=sa.text("status = 'QUEUED' AND runner IS NULL"))
    op.create_index('ix_details_held', 'details', ['lease_expires_at'], unique=False, postgresql_where=sa.text("runner IS NOT NULL AND status IN ('QUEUED', 'RUNNING')"))
    op.create_table('results',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('task_id', sa.String(length=32), nullable=False),
    sa.Column('task_name', sa.String(length=200), nullable=False),
    sa.Column('image', sa.String(length=400), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('times', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('parallelism', sa.Integer(), nullable=True),
    sa.Column('submitted_at', sa.Float(), nullable=False),
    sa.Column('start', sa.Float(), nullable=True),
    sa.Column('end', sa.Float(), nullable=True),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('active', sa.Integer(), nullable=False),
    sa.Column('n_running', sa.Integer(), nullable=False),
    sa.Column('n_complete', sa.Integer(), nullable=False),
    sa.Column('n_error', sa.Integer(), nullable=False),
    sa.Column('n_cancelled', sa.Integer(), nullable=False),
    sa.Column('n_killed', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('finished_notified', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_results_status'), 'results', ['status'], unique=False)
    op.create_index(op.f('ix_results_submitted_at'), 'results', ['submitted_at'], unique=False)
    op.create_index(op.f('ix_results_task_id'), 'results', ['task_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_results_task_id'), table_name='results')
    op.drop_index(op.f('ix_results_submitted_at'), table_name='results')
    op.drop_index(op.f('ix_results_status'), table_name='results')
    op.drop_table('results')
    op.drop_index('ix_details_held', table_name='details', postgresql_where=sa.text("runner IS NOT NULL AND status IN ('QUEUED', 'RUNNING')"))
    op.drop_index('ix_details_claimable', table_name='details', postgresql_where=sa.text("status = 'QUEUED' AND runner IS NULL"))
    op.drop_table('details')
    op.drop_table('detail_logs')
    op.drop_index('ix_tasks_created_at', table_name='tasks')
    op.drop_table('tasks')
    op.execute("DROP SEQUENCE details_seq")
