"""Initial schema: models, datasets, instructions, negatives, score runs and results,
annotations, runs with lineage and metrics.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.String(length=128), nullable=True),
    sa.Column('n_instructions', sa.Integer(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('adapter', sa.Text(), nullable=True),
    sa.Column('dtype', sa.String(length=16), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=128), nullable=True),
    sa.Column('meta', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("role IN ('pm', 'rm')", name=op.f('ck_models_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models'))
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_models_fingerprint'), ['fingerprint'], unique=False)
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('artifacts', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('filter', 'augment', 'sft', 'rm', 'ppo', 'eval')", name=op.f('ck_runs_kind')),
    sa.CheckConstraint("status IN ('created', 'queued', 'running', 'done', 'failed', 'cancelled')", name=op.f('ck_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    op.create_table('instructions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('ext_id', sa.String(length=400), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('chosen', sa.Text(), nullable=False),
    sa.Column('rejected', sa.Text(), nullable=True),
    sa.Column('meta', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_instructions_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instructions')),
    sa.UniqueConstraint('dataset_id', 'ext_id', name=op.f('uq_instructions_dataset_id_ext_id'))
    )
    op.create_table('run_inputs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('ref_kind', sa.String(length=32), nullable=False),
    sa.Column('ref_id', sa.Integer(), nullable=True),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_inputs_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_inputs'))
    )
    with op.batch_alter_table('run_inputs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_inputs_run_id'), ['run_id'], unique=False)
    op.create_table('run_metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_metrics_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_metrics'))
    )
    with op.batch_alter_table('run_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_run_metrics_run_name_step', ['run_id', 'name', 'step'], unique=False)
    op.create_table('score_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('pm_model_id', sa.Integer(), nullable=True),
    sa.Column('rm_model_id', sa.Integer(), nullable=True),
    sa.Column('variants', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_score_runs_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pm_model_id'], ['models.id'], name=op.f('fk_score_runs_pm_model_id_models'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['rm_model_id'], ['models.id'], name=op.f('fk_score_runs_rm_model_id_models'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_runs'))
    )
    with op.batch_alter_table('score_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_score_runs_dataset_id'), ['dataset_id'], unique=False)
    op.create_table('annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instruction_id', sa.Integer(), nullable=False),
    sa.Column('score_run_id', sa.Integer(), nullable=True),
    sa.Column('response_a', sa.Text(), nullable=False),
    sa.Column('response_b', sa.Text(), nullable=False),
    sa.Column('response_a_ref', sa.String(length=200), nullable=True),
    sa.Column('response_b_ref', sa.String(length=200), nullable=True),
    sa.Column('choice', sa.String(length=16), nullable=False),
    sa.Column('annotator', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('meta', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("choice IN ('a', 'b', 'tie', 'both_bad')", name=op.f('ck_annotations_choice')),
    sa.CheckConstraint("source IN ('human', 'llm', 'code')", name=op.f('ck_annotations_source')),
    sa.ForeignKeyConstraint(['instruction_id'], ['instructions.id'], name=op.f('fk_annotations_instruction_id_instructions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['score_run_id'], ['score_runs.id'], name=op.f('fk_annotations_score_run_id_score_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations'))
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index('ix_annotations_instruction_id', ['instruction_id'], unique=False)
    op.create_table('negatives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instruction_id', sa.Integer(), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=False),
    sa.Column('neg_index', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['instruction_id'], ['instructions.id'], name=op.f('fk_negatives_instruction_id_instructions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_negatives')),
    sa.UniqueConstraint('instruction_id', 'variant', 'neg_index', name=op.f('uq_negatives_instruction_id_variant_neg_index'))
    )
    op.create_table('score_details',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('score_run_id', sa.Integer(), nullable=False),
    sa.Column('instruction_id', sa.Integer(), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=False),
    sa.Column('neg_index', sa.Integer(), nullable=False),
    sa.Column('rm_gold', sa.Float(), nullable=True),
    sa.Column('rm_neg', sa.Float(), nullable=True),
    sa.Column('epsilon', sa.Float(), nullable=True),
    sa.Column('pm_logprob_sum', sa.Float(), nullable=True),
    sa.Column('pm_tokens', sa.Integer(), nullable=True),
    sa.Column('pm_logprob_mean', sa.Float(), nullable=True),
    sa.Column('term', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['instruction_id'], ['instructions.id'], name=op.f('fk_score_details_instruction_id_instructions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['score_run_id'], ['score_runs.id'], name=op.f('fk_score_details_score_run_id_score_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_details')),
    sa.UniqueConstraint('instruction_id', 'score_run_id', 'variant', 'neg_index', name=op.f('uq_score_details_instruction_id_score_run_id_variant_neg_index'))
    )
    op.create_table('seam_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('score_run_id', sa.Integer(), nullable=False),
    sa.Column('instruction_id', sa.Integer(), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=False),
    sa.Column('seam', sa.Float(), nullable=False),
    sa.Column('n_negatives', sa.Integer(), nullable=False),
    sa.Column('n_misjudged', sa.Integer(), nullable=False),
    sa.Column('rm_gold', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['instruction_id'], ['instructions.id'], name=op.f('fk_seam_scores_instruction_id_instructions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['score_run_id'], ['score_runs.id'], name=op.f('fk_seam_scores_score_run_id_score_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seam_scores')),
    sa.UniqueConstraint('instruction_id', 'score_run_id', 'variant', name=op.f('uq_seam_scores_instruction_id_score_run_id_variant'))
    )
    with op.batch_alter_table('seam_scores', schema=None) as batch_op:
        batch_op.create_index('ix_seam_scores_run_variant_seam', ['score_run_id', 'variant', 'seam', 'instruction_id'], unique=False)


def downgrade() -> None:
    op.drop_table('seam_scores')
    op.drop_table('score_details')
    op.drop_table('negatives')
    op.drop_table('annotations')
    op.drop_table('score_runs')
    op.drop_table('run_metrics')
    op.drop_table('run_inputs')
    op.drop_table('instructions')
    op.drop_table('runs')
    op.drop_table('models')
    op.drop_table('datasets')
