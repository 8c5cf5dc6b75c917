#!/usr/bin/env bash
# Written by shardsim export from job gpt2-xl-fsdp-2x-titan-rtx (strategy fsdp-full-shard, model gpt2-xl, topology 2x-titan-rtx-24g).
# train.py: your Hugging Face Trainer script (it takes the TrainingArguments flags below).
# Multi-node: run on every node with --node_rank / --machine_rank and the rendezvous of your cluster.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
accelerate launch --config_file "$HERE/accelerate_config.yaml" train.py --per_device_train_batch_size 1 --gradient_accumulation_steps 1 --learning_rate 1e-4 --optim adamw_torch --adam_beta1 0.9 --adam_beta2 0.999 --adam_epsilon 1e-8 --weight_decay 0 --seed 1234 --max_seq_length 1024

# Where each value came from (shardsim key = value (file:line)):
#   --per_device_train_batch_size = 1  <- batch.micro_batch = 1 (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:34)
#   --gradient_accumulation_steps = 1  <- batch.grad_accum = 1 (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:35)
#   --learning_rate = 1e-4  <- optimizer.lr = 1e-4 (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:31)
#   --optim = adamw_torch  <- optimizer.name = adamw (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:30)
#   --adam_beta1 = 0.9  <- optimizer.beta1 = 0.9 (default)
#   --adam_beta2 = 0.999  <- optimizer.beta2 = 0.999 (default)
#   --adam_epsilon = 1e-8  <- optimizer.eps = 1e-8 (default)
#   --weight_decay = 0  <- optimizer.weight_decay = 0 (default)
#   --seed = 1234  <- job.seed = 1234 (default)
#   --max_seq_length = 1024  <- batch.seq_len = 1024 (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:36)
#   accelerate_config.yaml distributed_type = FSDP  <- parallel.strategy = fsdp-full-shard (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:23)
#   accelerate_config.yaml mixed_precision = 'no'  <- precision.params = fp32 (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:26)
#   accelerate_config.yaml num_machines = 1  <- topology.cluster.nodes (topology 2x-titan-rtx-24g)
#   accelerate_config.yaml num_processes = 2  <- topology.cluster.gpus_per_node (topology 2x-titan-rtx-24g)
#   accelerate_config.yaml fsdp_sharding_strategy = FULL_SHARD  <- parallel.strategy = fsdp-full-shard (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:23)
#   accelerate_config.yaml fsdp_backward_prefetch = BACKWARD_PRE  <- fsdp.backward_prefetch = backward_pre (default)
#   accelerate_config.yaml fsdp_forward_prefetch = false  <- fsdp.forward_prefetch = false (default)
#   accelerate_config.yaml fsdp_limit_all_gathers = true  <- fsdp.limit_all_gathers = true (default)
#   accelerate_config.yaml fsdp_offload_params = false  <- memory.offload_params = false (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:41)
#   accelerate_config.yaml fsdp_activation_checkpointing = false  <- memory.activation_checkpointing = false (<jobs/gpt2-xl-fsdp-2x-titan-rtx.ini>:39)
# Not in these files: the model and what it is given (job.model = gpt2-xl, lora.*, memory.attention, memory.loss, dropout.*) belong to train.py.
