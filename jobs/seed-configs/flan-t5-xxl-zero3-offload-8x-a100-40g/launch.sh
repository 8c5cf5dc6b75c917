#!/usr/bin/env bash
# Written by shardsim export from job flan-t5-xxl-zero3-offload-8x-a100-40g (strategy zero3, model flan-t5-xxl, topology 8x-a100-40g).
# train.py: your Hugging Face Trainer script (it takes the TrainingArguments flags below).
# Multi-node: run on every node with --node_rank / --machine_rank and the rendezvous of your cluster.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
deepspeed --num_nodes 1 --num_gpus 8 train.py --deepspeed "$HERE/ds_config.json" --per_device_train_batch_size 8 --gradient_accumulation_steps 1 --bf16 true --gradient_checkpointing true --learning_rate 1e-4 --optim adamw_torch --adam_beta1 0.9 --adam_beta2 0.999 --adam_epsilon 1e-8 --weight_decay 0 --seed 1234 --max_seq_length 512 --max_target_length 129

# Where each value came from (shardsim key = value (file:line)):
#   ds_config.json train_micro_batch_size_per_gpu = 8  <- batch.micro_batch = 8 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:34)
#   ds_config.json gradient_accumulation_steps = 1  <- batch.grad_accum = 1 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:35)
#   ds_config.json train_batch_size = 64 (micro-batch x accumulation x 8 ranks)  <- batch.micro_batch = 8 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:34)
#   ds_config.json bf16.enabled = true  <- precision.params = bf16 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:26)
#   ds_config.json optimizer.type = AdamW  <- optimizer.name = adamw (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:30)
#   ds_config.json optimizer.params.lr = 1e-4  <- optimizer.lr = 1e-4 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:31)
#   ds_config.json zero_optimization.stage = 3  <- parallel.strategy = zero3 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:23)
#   ds_config.json zero_optimization.offload_optimizer.device = cpu  <- memory.offload_optimizer = true (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:41)
#   ds_config.json zero_optimization.offload_optimizer.pin_memory = true  <- deepspeed.pin_memory = true (default)
#   ds_config.json zero_optimization.offload_param.device = cpu  <- memory.offload_params = true (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:42)
#   ds_config.json zero_optimization.overlap_comm = true  <- deepspeed.overlap_comm = auto (default)
#   ds_config.json zero_optimization.sub_group_size = 1000000000  <- deepspeed.sub_group_size = 1e9 (default)
#   ds_config.json zero_optimization.reduce_bucket_size = 500000000 elements  <- parallel.bucket_mib = auto (default)
#   ds_config.json zero_optimization.stage3_prefetch_bucket_size = 50000000  <- deepspeed.stage3_prefetch_bucket_size = auto (default)
#   ds_config.json zero_optimization.stage3_param_persistence_threshold = 100000  <- deepspeed.stage3_param_persistence_threshold = auto (default)
#   ds_config.json zero_optimization.stage3_max_live_parameters = 1000000000  <- deepspeed.stage3_max_live_parameters = 1e9 (default)
#   ds_config.json zero_optimization.stage3_max_reuse_distance = 1000000000  <- deepspeed.stage3_max_reuse_distance = 1e9 (default)
#   --per_device_train_batch_size = 8  <- batch.micro_batch = 8 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:34)
#   --gradient_accumulation_steps = 1  <- batch.grad_accum = 1 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:35)
#   --bf16 = true  <- precision.params = bf16 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:26)
#   --gradient_checkpointing = true  <- memory.activation_checkpointing = true (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:40)
#   --learning_rate = 1e-4  <- optimizer.lr = 1e-4 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:31)
#   --optim = adamw_torch  <- optimizer.name = adamw (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:30)
#   --adam_beta1 = 0.9  <- optimizer.beta1 = 0.9 (default)
#   --adam_beta2 = 0.999  <- optimizer.beta2 = 0.999 (default)
#   --adam_epsilon = 1e-8  <- optimizer.eps = 1e-8 (default)
#   --weight_decay = 0  <- optimizer.weight_decay = 0 (default)
#   --seed = 1234  <- job.seed = 1234 (default)
#   --max_seq_length = 512  <- batch.seq_len = 512 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:36)
#   --max_target_length = 129  <- batch.decoder_seq_len = 129 (<jobs/flan-t5-xxl-zero3-offload-8x-a100-40g.ini>:37)
# Not in these files: the model and what it is given (job.model = flan-t5-xxl, lora.*, memory.attention, memory.loss, dropout.*) belong to train.py.
