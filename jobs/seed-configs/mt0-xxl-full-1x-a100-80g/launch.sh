#!/usr/bin/env bash
# Written by shardsim export from job mt0-xxl-full-1x-a100-80g (strategy ddp, model mt0-xxl, topology 1x-a100-80g).
# train.py: your Hugging Face Trainer script (it takes the TrainingArguments flags below).
# Multi-node: run on every node with --node_rank / --machine_rank and the rendezvous of your cluster.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
accelerate launch --config_file "$HERE/accelerate_config.yaml" train.py --per_device_train_batch_size 8 --gradient_accumulation_steps 1 --learning_rate 1e-4 --optim adamw_torch --adam_beta1 0.9 --adam_beta2 0.999 --adam_epsilon 1e-8 --weight_decay 0 --seed 1234 --max_seq_length 64

# Where each value came from (shardsim key = value (file:line)):
#   --per_device_train_batch_size = 8  <- batch.micro_batch = 8 (<jobs/mt0-xxl-full-1x-a100-80g.ini>:34)
#   --gradient_accumulation_steps = 1  <- batch.grad_accum = 1 (<jobs/mt0-xxl-full-1x-a100-80g.ini>:35)
#   --learning_rate = 1e-4  <- optimizer.lr = 1e-4 (<jobs/mt0-xxl-full-1x-a100-80g.ini>:31)
#   --optim = adamw_torch  <- optimizer.name = adamw (<jobs/mt0-xxl-full-1x-a100-80g.ini>:30)
#   --adam_beta1 = 0.9  <- optimizer.beta1 = 0.9 (default)
#   --adam_beta2 = 0.999  <- optimizer.beta2 = 0.999 (default)
#   --adam_epsilon = 1e-8  <- optimizer.eps = 1e-8 (default)
#   --weight_decay = 0  <- optimizer.weight_decay = 0 (default)
#   --seed = 1234  <- job.seed = 1234 (default)
#   --max_seq_length = 64  <- batch.seq_len = 64 (<jobs/mt0-xxl-full-1x-a100-80g.ini>:36)
#   accelerate_config.yaml distributed_type = NO  <- parallel.strategy = ddp (<jobs/mt0-xxl-full-1x-a100-80g.ini>:23)
#   accelerate_config.yaml mixed_precision = 'no'  <- precision.params = fp32 (<jobs/mt0-xxl-full-1x-a100-80g.ini>:26)
#   accelerate_config.yaml num_machines = 1  <- topology.cluster.nodes (topology 1x-a100-80g)
#   accelerate_config.yaml num_processes = 1  <- topology.cluster.gpus_per_node (topology 1x-a100-80g)
# Not in these files: the model and what it is given (job.model = mt0-xxl, lora.*, memory.attention, memory.loss, dropout.*) belong to train.py.
